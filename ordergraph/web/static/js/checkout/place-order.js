// Placing the order for the cart: checkout() once per idempotency key, and what each refusal
// (missing stock, a bad address or line, a conflict, too many open orders) means on the page.

import { query } from '../api.js';
import { cart } from '../cart.js';
import { toast } from '../feedback.js';
import { fmt } from '../format.js';
import { CHECKOUT } from '../queries.js';
import { h, randomKey } from '../ui.js';
import { rememberAddress } from './default-address.js';
import { addressProblem, lineProblem } from './problems.js';
import { clearState, saveState } from './saved-state.js';
import { figures, renderSummary } from './summary.js';

/** The order for this cart: created (once per key) or the one already waiting for payment. */
export async function placeOrder(ctx, state, shipTo) {
  if (state.orderId) return state.orderId;
  if (!state.key) {
    state.key = randomKey();
    saveState(state);
  }
  const items = cart.lines().map((l) => ({ productId: l.productId, quantity: l.quantity }));
  const shown = figures(ctx);
  const data = await query(CHECKOUT, { input: { items, idempotencyKey: state.key, shippingAddress: shipTo } });
  const result = data.checkout;
  if (result.__typename === 'CheckoutPayload') return orderPlaced(ctx, state, shipTo, result.order, shown);
  orderRefused(ctx, result);
  return null;
}

/** The order's id, or null when its total is not the one shown (then it is shown, to pay). */
function orderPlaced(ctx, state, shipTo, order, shown) {
  state.orderId = order.id;
  state.orderNumber = order.number;
  delete state.key; // the order exists now
  saveState(state);
  rememberAddress(ctx, shipTo);
  const { subtotal, shipping, total } = order;
  if (!shown || !shown.total || shown.total.amount !== total.amount) {
    // The prices or the rates changed since this page showed them: show the order's
    // figures and let the customer press Pay again for them.
    ctx.quoted = { subtotal, shipping, total };
    renderSummary(ctx);
    ctx.formError.textContent = `The total is ${fmt(total)} (shipping ${shipping.amount ? fmt(shipping) : 'free'}). Press Pay to pay it.`;
    return null;
  }
  return state.orderId;
}

function orderRefused(ctx, result) {
  const { formError } = ctx;
  switch (result.__typename) {
    case 'InsufficientStockError':
      clearState();
      notEnoughStock(ctx, result);
      return;
    case 'ValidationError':
      clearState();
      invalidInput(ctx, result);
      return;
    case 'NotFoundError':
      // The API points at the cart line (items.N.productId) of a product no longer on sale.
      clearState();
      noLongerOnSale(ctx, result);
      return;
    case 'IdempotencyConflictError':
      // The key was used for another cart (changed in another tab): a fresh key next time.
      clearState();
      formError.textContent = 'Your cart changed while paying. Check it and press Pay again.';
      return;
    case 'PaymentError':
      clearState();
      formError.textContent = `${result.message} Nothing was charged; try again in a moment.`;
      return;
    case 'TooManyOpenOrdersError':
      // Unpaid orders hold stock: pay or cancel one (My orders) before ordering again.
      clearState();
      formError.textContent = `${result.message} Nothing was charged; see My orders.`;
      return;
    default:
      formError.textContent = result.message || 'The order could not be placed.';
  }
}

function notEnoughStock(ctx, result) {
  const line = cart.lines().find((l) => l.productId === String(result.productId));
  const name = line ? line.name : `Product ${result.productId}`;
  if (result.available > 0) {
    lineProblem(ctx, result.productId, `Only ${result.available} ${name} left; you asked for ${result.requested}.`,
      h('button', { type: 'button', class: 'btn btn-sm', onclick: () => {
        cart.setQuantity(result.productId, result.available);
        toast(`${name}: quantity changed to ${result.available}.`);
      } }, `Change to ${result.available}`));
  } else {
    lineProblem(ctx, result.productId, `${name} is sold out.`,
      h('button', { type: 'button', class: 'btn btn-sm', onclick: () => cart.remove(result.productId) },
        'Remove it'));
  }
  ctx.formError.textContent = `Not enough stock for ${name}. Adjust your cart and pay again; nothing was charged.`;
}

/** The cart line a refusal's field (items.N...) points at, if any. */
function lineOf(field) {
  const match = /^items\.(\d+)/.exec(field || '');
  return match ? cart.lines()[Number(match[1])] : null;
}

function invalidInput(ctx, result) {
  if (/^shippingAddress/.test(result.field || '')) {
    addressProblem(ctx, result.field, result.message);
    return;
  }
  const line = lineOf(result.field);
  if (line) lineProblem(ctx, line.productId, result.message);
  else ctx.formError.textContent = result.message;
}

function noLongerOnSale(ctx, result) {
  const line = lineOf(result.field);
  if (line) {
    lineProblem(ctx, line.productId, `${line.name} is no longer on sale.`,
      h('button', { type: 'button', class: 'btn btn-sm', onclick: () => cart.remove(line.productId) },
        'Remove it'));
    ctx.formError.textContent = 'Remove what is no longer on sale and pay again; nothing was charged.';
  } else {
    ctx.formError.textContent = `${result.message} Remove it from your cart and try again.`;
  }
}
