// #/checkout : the shipping address (pre-filled from the default address), order summary with
// shipping, the card field (Stripe Elements from paymentConfig), "Pay $X".
//
// The flow works with real Stripe and with the local emulator:
//   stripe.createToken(card) -> checkout(items, idempotencyKey, shippingAddress)
//   -> payOrder(id, token.card.id)
//   -> if requiresAction: stripe.confirmCardPayment(clientSecret) -> syncPayment(id).
// The idempotency key is kept (with the cart and address it was made for) until the order
// exists, so a retry after a lost answer returns the same order. A declined order is FAILED
// and its stock is back on sale: the next attempt is a new checkout with a new key, the cart
// untouched. An order waiting for payment whose address the customer then changes is
// cancelled, and the next Pay places a new one.
//
// This module builds the page and wires it; the parts live in ../checkout/ and share one
// context object (the page's elements and its state: rates, quoted figures, Stripe, the card).

import { ApiError } from '../api.js';
import { cart } from '../cart.js';
import { setUpCard } from '../checkout/card.js';
import { loadDefaultAddress } from '../checkout/default-address.js';
import { payForCart } from '../checkout/pay.js';
import { clearErrors } from '../checkout/problems.js';
import { figures, renderSummary } from '../checkout/summary.js';
import { fmt } from '../format.js';
import { session } from '../session.js';
import { addressForm, shippingRates } from '../shipping.js';
import { ICONS, emptyState, fill, h, loadingState, setBusy, svgIcon } from '../ui.js';

export const title = 'Checkout';

export function mount(root, { scope, navigate }) {
  if (!cart.count()) {
    fill(root, h('div', { class: 'page-head' }, h('h1', {}, 'Checkout')),
      h('div', { class: 'card' }, emptyState('Nothing to check out', 'Your cart is empty.',
        h('a', { class: 'btn btn-primary', href: '#/' }, 'Browse the shop'))));
    return null;
  }
  const ctx = checkoutPage(root, scope, navigate);
  watchCart(ctx);
  renderSummary(ctx);
  ctx.address.onInput(() => {
    if (ctx.quoted) {
      ctx.quoted = null;
      renderSummary(ctx);
    }
  });
  loadRates(ctx);
  loadDefaultAddress(ctx);
  setUpCard(ctx);
  scope.listen(ctx.form, 'submit', (event) => submit(ctx, event));
  return null;
}

/**
 * The form and the summary, filled into root; returns the context the parts share.
 * The elements are made in this order so the address form's field ids (nextId) stay the same.
 */
function checkoutPage(root, scope, navigate) {
  const formError = h('div', { class: 'form-error', role: 'alert', id: 'checkout-error' });
  const cardHost = h('div', { class: 'card-field', id: 'card-element' }, loadingState('Loading the card field…'));
  const cardError = h('div', { class: 'field-error', role: 'alert', id: 'card-errors' });
  const hint = h('div', { class: 'test-cards' });
  const payButton = h('button', { type: 'submit', class: 'btn btn-primary btn-lg btn-block', disabled: true },
    'Pay');
  const summary = h('section', { class: 'card', 'aria-label': 'Order summary' });
  const address = addressForm();
  const saveDefault = h('input', { type: 'checkbox', id: 'save-default-address', checked: true });
  const form = h('form', { class: 'card', novalidate: true, 'aria-label': 'Shipping and payment' },
    h('div', { class: 'card-head' }, h('h2', { id: 'ship-h' }, 'Shipping address')),
    h('div', { class: 'card-body form', role: 'group', 'aria-labelledby': 'ship-h' },
      address.el,
      h('label', { class: 'check', for: 'save-default-address' }, saveDefault, 'Save as my default address')),
    h('div', { class: 'card-head' }, h('h2', {}, 'Payment')),
    h('div', { class: 'card-body form' },
      formError,
      h('div', { class: 'field' },
        h('span', { class: 'label', id: 'card-label' }, 'Card'),
        cardHost, cardError, hint),
      payButton,
      h('p', { class: 'secure' }, svgIcon(ICONS.lock, 14), 'Card details go straight to Stripe; this shop never sees them.')));
  cardHost.setAttribute('role', 'group');
  cardHost.setAttribute('aria-labelledby', 'card-label');
  cardHost.setAttribute('aria-describedby', 'card-errors');

  fill(root,
    h('div', { class: 'page-head' },
      h('div', {}, h('a', { class: 'back', href: '#/cart' }, '← Back to cart'),
        h('h1', {}, 'Checkout'),
        h('p', { class: 'sub' }, `Paying as ${session.user.email}`))),
    h('div', { class: 'layout-2' }, form, summary));

  return {
    scope, navigate, form, formError, cardHost, cardError, hint, payButton, summary, address, saveDefault,
    lineErrors: new Map(), // productId -> { li, slot } of the summary's lines
    busy: false,
    rates: null,
    quoted: null, // { subtotal, shipping, total } of the order placed, when it differs
    savedDefault: null, // the default address as the server keeps it (JSON), once read
    config: null,
    stripe: null,
    card: null,
  };
}

/** An emptied cart leaves the page; a changed one drops the order's figures. */
function watchCart(ctx) {
  ctx.scope.add(cart.onChange(() => {
    if (!cart.count()) {
      ctx.navigate('/cart', { replace: true });
      return;
    }
    ctx.quoted = null;
    renderSummary(ctx);
  }));
}

function loadRates(ctx) {
  shippingRates().then((loaded) => {
    ctx.rates = loaded;
    if (ctx.scope.alive) renderSummary(ctx);
  }, () => {
    // The summary says "…" until the order is placed; the order's own figures are shown then.
  });
}

async function submit(ctx, event) {
  event.preventDefault();
  const { form, payButton, scope } = ctx;
  if (ctx.busy || !ctx.card) return;
  ctx.busy = true;
  clearErrors(ctx);
  const label = payButton.textContent;
  setBusy(payButton, true, 'Processing payment…');
  form.setAttribute('aria-busy', 'true');
  try {
    await payForCart(ctx);
  } catch (error) {
    if (!scope.alive) return;
    ctx.formError.textContent = error instanceof ApiError && error.code === 'NETWORK'
      ? 'We could not reach the server. Press Pay again: you will not be charged twice.'
      : error.message;
  } finally {
    ctx.busy = false;
    form.removeAttribute('aria-busy');
    if (scope.alive) {
      setBusy(payButton, false);
      const sums = figures(ctx);
      payButton.textContent = sums && sums.total ? `Pay ${fmt(sums.total)}` : label;
    }
  }
}
