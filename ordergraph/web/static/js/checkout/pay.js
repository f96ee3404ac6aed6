// Paying: the card's token, the order placed, payOrder (with 3-D Secure through
// confirmCardPayment and syncPayment), and the outcome: the order page, or the reason shown.

import { query } from '../api.js';
import { cart } from '../cart.js';
import { announce, toast } from '../feedback.js';
import { PAY_ORDER, SYNC_PAYMENT } from '../queries.js';
import { tokenize } from './card.js';
import { placeOrder } from './place-order.js';
import { cardProblem } from './problems.js';
import { clearState, loadState } from './saved-state.js';

/** One press of Pay: from the address typed to the paid (or pending) order's page. */
export async function payForCart(ctx) {
  const { address, scope } = ctx;
  const shipTo = address.read();
  if (!shipTo) {
    address.focusProblem();
    ctx.formError.textContent = 'Enter the shipping address.';
    return;
  }
  const token = await tokenize(ctx);
  if (!token || !scope.alive) return;
  const state = loadState(JSON.stringify(shipTo));
  const orderId = await placeOrder(ctx, state, shipTo);
  if (!orderId || !scope.alive) return;
  const order = await pay(ctx, state, orderId, token);
  if (!order) return;
  finish(ctx, order);
}

/** The order after payOrder (and 3-D Secure), or null with the reason shown. */
async function pay(ctx, state, orderId, token) {
  const data = await query(PAY_ORDER, { id: orderId, paymentMethodId: token.card.id });
  const result = data.payOrder;
  if (result.__typename === 'PayOrderPayload') {
    let order = result.order;
    if (result.requiresAction && result.clientSecret) {
      const outcome = await ctx.stripe.confirmCardPayment(result.clientSecret);
      const synced = (await query(SYNC_PAYMENT, { id: orderId })).syncPayment;
      if (synced.__typename === 'OrderPayload') order = synced.order;
      if (outcome && outcome.error && order.status !== 'PAID') {
        cardProblem(ctx, outcome.error.message || 'The card could not be authenticated.');
      }
    }
    return order;
  }
  if (result.__typename === 'PaymentError') {
    if (result.code === 'PAYMENT_DECLINED') {
      // The order is FAILED and its stock released: the next try is a new order.
      clearState();
      cardProblem(ctx, `${result.message} Try another card; your cart is unchanged.`);
      announce('Payment declined.');
    } else {
      ctx.formError.textContent = `${result.message} Press Pay to try again.`;
    }
    return null;
  }
  // NotFound or InvalidTransition: that order cannot be paid any more (expired, cancelled).
  clearState();
  ctx.formError.textContent = result.__typename === 'InvalidTransitionError'
    ? `Order #${state.orderNumber || orderId} is ${result.from.toLowerCase().replace('_', ' ')} and cannot be paid. Press Pay to place a new order.`
    : `${result.message} Press Pay to place a new order.`;
  return null;
}

/** A declined order stays here; a paid or pending one empties the cart and opens its page. */
function finish(ctx, order) {
  if (order.status === 'FAILED') {
    clearState();
    cardProblem(ctx, 'Your card was declined. Try another card; your cart is unchanged.');
    return;
  }
  clearState();
  cart.clear();
  if (order.status === 'PAID') {
    toast(`Payment received. Thank you! Order #${order.number} is paid.`, { kind: 'success' });
  } else {
    toast(`Order #${order.number} placed; waiting for the payment to be confirmed.`);
  }
  ctx.navigate(`/orders/${order.id}`);
}
