"""The reply-time contract measured: the reply clock (engine) and public stats."""
