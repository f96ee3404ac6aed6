// The checkout kept in localStorage: whose cart, paid to which address, its idempotency key
// until the order exists, then the order's id and number.

import { query } from '../api.js';
import { cart } from '../cart.js';
import { CANCEL_ORDER } from '../queries.js';
import { session } from '../session.js';

const STATE_KEY = 'og.checkout';

/** { user, fingerprint, address, key?, orderId? } for the cart being paid to `address`. */
export function loadState(address) {
  const fresh = { user: session.user && session.user.id, fingerprint: cart.fingerprint(), address };
  try {
    const saved = JSON.parse(localStorage.getItem(STATE_KEY) || 'null');
    if (saved && saved.user === fresh.user && saved.fingerprint === fresh.fingerprint) {
      if (saved.address === address) return saved;
      // Another address: that order (if placed) would ship to the old one. Close it, so it
      // stops holding the stock, and place a new one.
      if (saved.orderId) query(CANCEL_ORDER, { id: saved.orderId }).catch(() => {});
    }
  } catch {
    // Start afresh.
  }
  return fresh;
}

export function saveState(state) {
  try {
    localStorage.setItem(STATE_KEY, JSON.stringify(state));
  } catch {
    // Without storage the key lives as long as the page.
  }
}

export function clearState() {
  try {
    localStorage.removeItem(STATE_KEY);
  } catch {
    // Nothing to clear.
  }
}
