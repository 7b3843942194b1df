// Wallet: after paying, wait for the gateway's callback to land, then reload.

import { api } from "./common.js";

const el = document.getElementById("topup-pending");
if (el) {
  const id = el.dataset.paymentId;
  let tries = 0;
  const tick = async () => {
    tries += 1;
    try {
      const p = await api(`/api/wallet/topups/${encodeURIComponent(id)}`);
      if (p.status !== "pending") {
        location.replace(`/wallet?payment=${encodeURIComponent(id)}`);
        return;
      }
    } catch {
      /* keep waiting; the manual link stays */
    }
    if (tries < 60) setTimeout(tick, Math.min(500 * tries, 3000));
  };
  setTimeout(tick, 500);
}
