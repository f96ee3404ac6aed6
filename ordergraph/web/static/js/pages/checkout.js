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

import { ApiError, query } from '../api.js';
import { cart } from '../cart.js';
import { announce, toast } from '../feedback.js';
import { fmt } from '../format.js';
import {
  CANCEL_ORDER, CHECKOUT, MY_ADDRESS, PAY_ORDER, SYNC_PAYMENT, UPDATE_DEFAULT_ADDRESS,
} from '../queries.js';
import { session } from '../session.js';
import { addressForm, shippingCost, shippingRates } from '../shipping.js';
import { loadStripe, paymentConfig } from '../stripe.js';
import { ICONS, emptyState, fill, h, loadingState, randomKey, setBusy, svgIcon } from '../ui.js';
import { freeShippingHint, lineTotal, summaryRows } from './cart-lines.js';

export const title = 'Checkout';

const STATE_KEY = 'og.checkout';
const LOCAL_LABELS = {
  number: ['Card number', 'cc-number'],
  exp_month: ['Expiry month (MM)', 'cc-exp-month'],
  exp_year: ['Expiry year (YY)', 'cc-exp-year'],
  cvc: ['Security code (CVC)', 'cc-csc'],
  postal_code: ['Postal code', 'postal-code'],
};

/** { user, fingerprint, address, key?, orderId? } for the cart being paid to `address`. */
function loadState(address) {
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

function saveState(state) {
  try {
    localStorage.setItem(STATE_KEY, JSON.stringify(state));
  } catch {
    // Without storage the key lives as long as the page.
  }
}

function clearState() {
  try {
    localStorage.removeItem(STATE_KEY);
  } catch {
    // Nothing to clear.
  }
}

export function mount(root, { scope, navigate }) {
  if (!cart.count()) {
    fill(root, h('div', { class: 'page-head' }, h('h1', {}, 'Checkout')),
      h('div', { class: 'card' }, emptyState('Nothing to check out', 'Your cart is empty.',
        h('a', { class: 'btn btn-primary', href: '#/' }, 'Browse the shop'))));
    return null;
  }

  let busy = false;
  let stripe = null;
  let card = null;
  let config = null;

  const formError = h('div', { class: 'form-error', role: 'alert', id: 'checkout-error' });
  const cardHost = h('div', { class: 'card-field', id: 'card-element' }, loadingState('Loading the card field…'));
  const cardError = h('div', { class: 'field-error', role: 'alert', id: 'card-errors' });
  const hint = h('div', { class: 'test-cards' });
  const payButton = h('button', { type: 'submit', class: 'btn btn-primary btn-lg btn-block', disabled: true },
    'Pay');
  const summary = h('section', { class: 'card', 'aria-label': 'Order summary' });
  const address = addressForm();
  const saveDefault = h('input', { type: 'checkbox', id: 'save-default-address', checked: true });
  let savedDefault = null; // the default address as the server keeps it (JSON), once read
  let rates = null;
  let quoted = null; // { subtotal, shipping, total } of the order placed, when it differs
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

  // ---- summary, with room for an error next to each line ----

  const lineErrors = new Map();

  /** Subtotal, shipping and total: the order's once placed, else the cart's at the rates. */
  function figures() {
    const subtotal = cart.subtotal();
    if (!subtotal) return null;
    if (quoted) return quoted;
    const shipping = rates ? shippingCost(rates, subtotal) : null;
    const total = shipping ? { amount: subtotal.amount + shipping.amount, currency: subtotal.currency } : null;
    return { subtotal, shipping, total };
  }

  function renderSummary() {
    const lines = cart.lines();
    const sums = figures();
    lineErrors.clear();
    fill(summary,
      h('div', { class: 'card-head' }, h('h2', {}, 'Order summary'),
        h('a', { href: '#/cart', class: 'small' }, 'Edit cart')),
      h('ul', { class: 'lines' }, lines.map((line) => {
        const slot = h('div', { class: 'line-warning', 'aria-live': 'polite' });
        const li = h('li', { class: 'line', dataset: { productId: line.productId } },
          h('div', {}, h('div', { class: 'line-name' }, line.name),
            h('div', { class: 'line-meta' }, `${line.quantity} × ${fmt(line.price)}`)),
          h('span'), h('span'),
          h('span', { class: 'line-total' }, fmt(lineTotal(line))),
          slot);
        lineErrors.set(line.productId, { li, slot });
        return li;
      })),
      sums ? h('div', { class: 'card-body' }, summaryRows(sums.subtotal, null, sums.shipping),
        freeShippingHint(rates, sums.subtotal, sums.shipping)) : null);
    if (!busy) payButton.textContent = sums && sums.total ? `Pay ${fmt(sums.total)}` : 'Pay';
  }

  function clearErrors() {
    address.clear();
    formError.textContent = '';
    cardError.textContent = '';
    cardHost.removeAttribute('aria-invalid');
    for (const { li, slot } of lineErrors.values()) {
      li.removeAttribute('data-problem');
      slot.replaceChildren();
    }
  }

  function lineProblem(productId, message, action) {
    const entry = lineErrors.get(String(productId));
    if (!entry) {
      formError.textContent = message;
      return;
    }
    entry.li.dataset.problem = '';
    fill(entry.slot, h('span', {}, message), action || null);
  }

  function cardProblem(message) {
    cardHost.setAttribute('aria-invalid', 'true');
    cardError.textContent = message;
  }

  scope.add(cart.onChange(() => {
    if (!cart.count()) {
      navigate('/cart', { replace: true });
      return;
    }
    quoted = null;
    renderSummary();
  }));
  renderSummary();
  address.onInput(() => {
    if (quoted) {
      quoted = null;
      renderSummary();
    }
  });

  // ---- shipping: the rates, and the default address to start from ----

  shippingRates().then((loaded) => {
    rates = loaded;
    if (scope.alive) renderSummary();
  }, () => {
    // The summary says "…" until the order is placed; the order's own figures are shown then.
  });
  query(MY_ADDRESS).then((data) => {
    const saved = data.me && data.me.defaultAddress;
    if (!scope.alive || !saved) return;
    savedDefault = JSON.stringify(saved);
    address.fill(saved);
  }, () => {
    // Typed by hand then.
  });

  async function rememberAddress(shipTo) {
    if (!saveDefault.checked || JSON.stringify(shipTo) === savedDefault) return;
    try {
      const result = (await query(UPDATE_DEFAULT_ADDRESS, { address: shipTo })).updateDefaultAddress;
      if (result.__typename === 'UserPayload') savedDefault = JSON.stringify(result.user.defaultAddress);
    } catch {
      // Only a convenience: the order has its address.
    }
  }

  function addressProblem(field, message) {
    const part = /^shippingAddress\.(\w+)$/.exec(field || '');
    if (part && address.problem(part[1], message)) {
      address.focusProblem();
      formError.textContent = 'Check the shipping address.';
    } else {
      formError.textContent = message;
    }
  }

  // ---- the card field ----

  async function setUpCard() {
    fill(cardHost, loadingState('Loading the card field…'));
    cardError.textContent = '';
    try {
      config = await paymentConfig();
      stripe = await loadStripe(config);
    } catch (error) {
      if (!scope.alive) return;
      fill(cardHost, h('span', {}, 'The card field could not load.'),
        h('button', { type: 'button', class: 'btn btn-sm', onclick: setUpCard }, 'Try again'));
      cardProblem(error.message);
      return;
    }
    if (!scope.alive) return;
    cardHost.replaceChildren();
    const dark = matchMedia('(prefers-color-scheme: dark)').matches;
    card = stripe.elements().create('card', {
      style: { base: { fontSize: '15px', color: dark ? '#e6e9f2' : '#1a1f36',
        '::placeholder': { color: '#8d94ab' } } },
    });
    card.mount(cardHost);
    scope.add(() => {
      try {
        card.destroy();
      } catch {
        // Already gone.
      }
    });
    card.on('change', (event) => {
      cardHost.removeAttribute('aria-invalid');
      cardError.textContent = event && event.error ? event.error.message : '';
    });
    if (config.mode === 'local') {
      // The emulator's stand-in mounts plain inputs into our page: give them labels.
      for (const input of cardHost.querySelectorAll('input')) {
        const [label, autocomplete] = LOCAL_LABELS[input.getAttribute('placeholder')] || [];
        if (label) input.setAttribute('aria-label', label);
        if (autocomplete) input.setAttribute('autocomplete', autocomplete);
        input.setAttribute('inputmode', 'numeric');
      }
      fill(hint, 'Local payments mode: pay with ', h('code', {}, '4242 4242 4242 4242'),
        '; ', h('code', {}, '4000 0000 0000 0341'), ' is declined. Any future date and CVC.');
    } else {
      fill(hint, 'Test mode cards: ', h('code', {}, '4242 4242 4242 4242'), '.');
      if (config.mode === 'stripe' && !String(config.publishableKey || '').startsWith('pk_test')) hint.replaceChildren();
    }
    payButton.disabled = false;
    renderSummary();
  }

  setUpCard();

  // ---- paying ----

  async function tokenize() {
    let result;
    try {
      result = await stripe.createToken(card);
    } catch {
      // The emulator's stand-in throws on an untouched field.
      result = { error: { message: 'Enter your card details.' } };
    }
    if (result.error) {
      cardProblem(result.error.message || 'Check your card details.');
      return null;
    }
    return result.token;
  }

  /** The order for this cart: created (once per key) or the one already waiting for payment. */
  async function placeOrder(state, shipTo) {
    if (state.orderId) return state.orderId;
    if (!state.key) {
      state.key = randomKey();
      saveState(state);
    }
    const items = cart.lines().map((l) => ({ productId: l.productId, quantity: l.quantity }));
    const shown = figures();
    const data = await query(CHECKOUT, { input: { items, idempotencyKey: state.key, shippingAddress: shipTo } });
    const result = data.checkout;
    switch (result.__typename) {
      case 'CheckoutPayload': {
        state.orderId = result.order.id;
        state.orderNumber = result.order.number;
        delete state.key; // the order exists now
        saveState(state);
        rememberAddress(shipTo);
        const { subtotal, shipping, total } = result.order;
        if (!shown || !shown.total || shown.total.amount !== total.amount) {
          // The prices or the rates changed since this page showed them: show the order's
          // figures and let the customer press Pay again for them.
          quoted = { subtotal, shipping, total };
          renderSummary();
          formError.textContent = `The total is ${fmt(total)} (shipping ${shipping.amount ? fmt(shipping) : 'free'}). Press Pay to pay it.`;
          return null;
        }
        return state.orderId;
      }
      case 'InsufficientStockError': {
        clearState();
        const line = cart.lines().find((l) => l.productId === String(result.productId));
        const name = line ? line.name : `Product ${result.productId}`;
        if (result.available > 0) {
          lineProblem(result.productId, `Only ${result.available} ${name} left; you asked for ${result.requested}.`,
            h('button', { type: 'button', class: 'btn btn-sm', onclick: () => {
              cart.setQuantity(result.productId, result.available);
              toast(`${name}: quantity changed to ${result.available}.`);
            } }, `Change to ${result.available}`));
        } else {
          lineProblem(result.productId, `${name} is sold out.`,
            h('button', { type: 'button', class: 'btn btn-sm', onclick: () => cart.remove(result.productId) },
              'Remove it'));
        }
        formError.textContent = `Not enough stock for ${name}. Adjust your cart and pay again; nothing was charged.`;
        return null;
      }
      case 'ValidationError': {
        clearState();
        if (/^shippingAddress/.test(result.field || '')) {
          addressProblem(result.field, result.message);
          return null;
        }
        const match = /^items\.(\d+)/.exec(result.field || '');
        const line = match ? cart.lines()[Number(match[1])] : null;
        if (line) lineProblem(line.productId, result.message);
        else formError.textContent = result.message;
        return null;
      }
      case 'NotFoundError': {
        // The API points at the cart line (items.N.productId) of a product no longer on sale.
        clearState();
        const match = /^items\.(\d+)/.exec(result.field || '');
        const line = match ? cart.lines()[Number(match[1])] : null;
        if (line) {
          lineProblem(line.productId, `${line.name} is no longer on sale.`,
            h('button', { type: 'button', class: 'btn btn-sm', onclick: () => cart.remove(line.productId) },
              'Remove it'));
          formError.textContent = 'Remove what is no longer on sale and pay again; nothing was charged.';
        } else {
          formError.textContent = `${result.message} Remove it from your cart and try again.`;
        }
        return null;
      }
      case 'IdempotencyConflictError':
        // The key was used for another cart (changed in another tab): a fresh key next time.
        clearState();
        formError.textContent = 'Your cart changed while paying. Check it and press Pay again.';
        return null;
      case 'PaymentError':
        clearState();
        formError.textContent = `${result.message} Nothing was charged; try again in a moment.`;
        return null;
      case 'TooManyOpenOrdersError':
        // Unpaid orders hold stock: pay or cancel one (My orders) before ordering again.
        clearState();
        formError.textContent = `${result.message} Nothing was charged; see My orders.`;
        return null;
      default:
        formError.textContent = result.message || 'The order could not be placed.';
        return null;
    }
  }

  async function pay(state, orderId, token) {
    const data = await query(PAY_ORDER, { id: orderId, paymentMethodId: token.card.id });
    const result = data.payOrder;
    if (result.__typename === 'PayOrderPayload') {
      let order = result.order;
      if (result.requiresAction && result.clientSecret) {
        const outcome = await stripe.confirmCardPayment(result.clientSecret);
        const synced = (await query(SYNC_PAYMENT, { id: orderId })).syncPayment;
        if (synced.__typename === 'OrderPayload') order = synced.order;
        if (outcome && outcome.error && order.status !== 'PAID') {
          cardProblem(outcome.error.message || 'The card could not be authenticated.');
        }
      }
      return order;
    }
    if (result.__typename === 'PaymentError') {
      if (result.code === 'PAYMENT_DECLINED') {
        // The order is FAILED and its stock released: the next try is a new order.
        clearState();
        cardProblem(`${result.message} Try another card; your cart is unchanged.`);
        announce('Payment declined.');
      } else {
        formError.textContent = `${result.message} Press Pay to try again.`;
      }
      return null;
    }
    // NotFound or InvalidTransition: that order cannot be paid any more (expired, cancelled).
    clearState();
    formError.textContent = result.__typename === 'InvalidTransitionError'
      ? `Order #${state.orderNumber || orderId} is ${result.from.toLowerCase().replace('_', ' ')} and cannot be paid. Press Pay to place a new order.`
      : `${result.message} Press Pay to place a new order.`;
    return null;
  }

  scope.listen(form, 'submit', async (event) => {
    event.preventDefault();
    if (busy || !card) return;
    busy = true;
    clearErrors();
    const label = payButton.textContent;
    setBusy(payButton, true, 'Processing payment…');
    form.setAttribute('aria-busy', 'true');
    try {
      const shipTo = address.read();
      if (!shipTo) {
        address.focusProblem();
        formError.textContent = 'Enter the shipping address.';
        return;
      }
      const token = await tokenize();
      if (!token || !scope.alive) return;
      const state = loadState(JSON.stringify(shipTo));
      const orderId = await placeOrder(state, shipTo);
      if (!orderId || !scope.alive) return;
      const order = await pay(state, orderId, token);
      if (!order) return;
      if (order.status === 'FAILED') {
        clearState();
        cardProblem('Your card was declined. Try another card; your cart is unchanged.');
        return;
      }
      clearState();
      cart.clear();
      if (order.status === 'PAID') {
        toast(`Payment received. Thank you! Order #${order.number} is paid.`, { kind: 'success' });
      } else {
        toast(`Order #${order.number} placed; waiting for the payment to be confirmed.`);
      }
      navigate(`/orders/${order.id}`);
    } catch (error) {
      if (!scope.alive) return;
      formError.textContent = error instanceof ApiError && error.code === 'NETWORK'
        ? 'We could not reach the server. Press Pay again: you will not be charged twice.'
        : error.message;
    } finally {
      busy = false;
      form.removeAttribute('aria-busy');
      if (scope.alive) {
        setBusy(payButton, false);
        const sums = figures();
        payButton.textContent = sums && sums.total ? `Pay ${fmt(sums.total)}` : label;
      }
    }
  });

  return null;
}
