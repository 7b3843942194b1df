"""A person's own data: download it (下载我的数据) and close the account (注销账号)."""
