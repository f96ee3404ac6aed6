// The checkout's card field: Stripe Elements (real Stripe or the local emulator's stand-in,
// as paymentConfig says), mounted with labels and test-card hints, and the card's token.

import { loadStripe, paymentConfig } from '../stripe.js';
import { fill, h, loadingState } from '../ui.js';
import { cardProblem } from './problems.js';
import { renderSummary } from './summary.js';

const LOCAL_LABELS = {
  number: ['Card number', 'cc-number'],
  exp_month: ['Expiry month (MM)', 'cc-exp-month'],
  exp_year: ['Expiry year (YY)', 'cc-exp-year'],
  cvc: ['Security code (CVC)', 'cc-csc'],
  postal_code: ['Postal code', 'postal-code'],
};

/** Load Stripe and mount the card field; on failure, say so with a Try again button. */
export async function setUpCard(ctx) {
  const { cardHost, scope } = ctx;
  fill(cardHost, loadingState('Loading the card field…'));
  ctx.cardError.textContent = '';
  try {
    ctx.config = await paymentConfig();
    ctx.stripe = await loadStripe(ctx.config);
  } catch (error) {
    if (!scope.alive) return;
    fill(cardHost, h('span', {}, 'The card field could not load.'),
      h('button', { type: 'button', class: 'btn btn-sm', onclick: () => setUpCard(ctx) }, 'Try again'));
    cardProblem(ctx, error.message);
    return;
  }
  if (!scope.alive) return;
  mountCard(ctx);
  if (ctx.config.mode === 'local') labelLocalInputs(cardHost);
  showTestCards(ctx.hint, ctx.config);
  ctx.payButton.disabled = false;
  renderSummary(ctx);
}

function mountCard(ctx) {
  const { cardHost } = ctx;
  cardHost.replaceChildren();
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  const card = ctx.stripe.elements().create('card', {
    style: { base: { fontSize: '15px', color: dark ? '#e6e9f2' : '#1a1f36',
      '::placeholder': { color: '#8d94ab' } } },
  });
  ctx.card = card;
  card.mount(cardHost);
  ctx.scope.add(() => {
    try {
      card.destroy();
    } catch {
      // Already gone.
    }
  });
  card.on('change', (event) => {
    cardHost.removeAttribute('aria-invalid');
    ctx.cardError.textContent = event && event.error ? event.error.message : '';
  });
}

/** The emulator's stand-in mounts plain inputs into our page: give them labels. */
function labelLocalInputs(cardHost) {
  for (const input of cardHost.querySelectorAll('input')) {
    const [label, autocomplete] = LOCAL_LABELS[input.getAttribute('placeholder')] || [];
    if (label) input.setAttribute('aria-label', label);
    if (autocomplete) input.setAttribute('autocomplete', autocomplete);
    input.setAttribute('inputmode', 'numeric');
  }
}

function showTestCards(hint, config) {
  if (config.mode === 'local') {
    fill(hint, 'Local payments mode: pay with ', h('code', {}, '4242 4242 4242 4242'),
      '; ', h('code', {}, '4000 0000 0000 0341'), ' is declined. Any future date and CVC.');
  } else {
    fill(hint, 'Test mode cards: ', h('code', {}, '4242 4242 4242 4242'), '.');
    if (config.mode === 'stripe' && !String(config.publishableKey || '').startsWith('pk_test')) hint.replaceChildren();
  }
}

/** The card's token from Stripe, or null with the reason shown at the card field. */
export async function tokenize(ctx) {
  let result;
  try {
    result = await ctx.stripe.createToken(ctx.card);
  } catch {
    // The emulator's stand-in throws on an untouched field.
    result = { error: { message: 'Enter your card details.' } };
  }
  if (result.error) {
    cardProblem(ctx, result.error.message || 'Check your card details.');
    return null;
  }
  return result.token;
}
