// The customer's default shipping address: filled into the form at the start, saved again
// (when the box is ticked and it changed) once an order is placed to a new one.

import { query } from '../api.js';
import { MY_ADDRESS, UPDATE_DEFAULT_ADDRESS } from '../queries.js';

/** Fill the address form from the default address, if the customer has one. */
export function loadDefaultAddress(ctx) {
  query(MY_ADDRESS).then((data) => {
    const saved = data.me && data.me.defaultAddress;
    if (!ctx.scope.alive || !saved) return;
    ctx.savedDefault = JSON.stringify(saved);
    ctx.address.fill(saved);
  }, () => {
    // Typed by hand then.
  });
}

export async function rememberAddress(ctx, shipTo) {
  if (!ctx.saveDefault.checked || JSON.stringify(shipTo) === ctx.savedDefault) return;
  try {
    const result = (await query(UPDATE_DEFAULT_ADDRESS, { address: shipTo })).updateDefaultAddress;
    if (result.__typename === 'UserPayload') ctx.savedDefault = JSON.stringify(result.user.defaultAddress);
  } catch {
    // Only a convenience: the order has its address.
  }
}
