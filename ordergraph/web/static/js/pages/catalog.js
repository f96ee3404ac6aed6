// #/ : the catalog. Product cards with a live stock badge (stockUpdated), search, add to cart.

import { query } from '../api.js';
import { cart, MAX_QUANTITY } from '../cart.js';
import { announce, toast } from '../feedback.js';
import { fmt, stockLevel, stockText } from '../format.js';
import { PRODUCTS, STOCK_UPDATED } from '../queries.js';
import {
  ICONS, emptyState, errorState, fill, h, initials, loadingState, nextId, svgIcon,
} from '../ui.js';

export const title = 'Shop';

export function mount(root, { scope, query: params }) {
  const state = {
    search: params.get('q') || '',
    products: [],
    cursor: null,
    hasNext: false,
    total: 0,
    cards: new Map(), // product id -> { product, badge, button, qty }
    stopStock: null,
    request: 0,
  };

  const count = h('p', { class: 'sub' }, '\u00a0');
  const searchId = nextId('search');
  const searchInput = h('input', {
    id: searchId, class: 'input', type: 'search', placeholder: 'Search products',
    autocomplete: 'off', value: state.search,
  });
  const results = h('section', { 'aria-label': 'Products', 'aria-busy': 'true' });
  const more = h('div', { class: 'more' });

  fill(root,
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Shop'), count)),
    h('div', { class: 'toolbar', role: 'search' },
      h('div', { class: 'search' },
        svgIcon(ICONS.search),
        h('label', { for: searchId, class: 'sr-only' }, 'Search products'),
        searchInput)),
    results, more);

  let debounce = null;
  scope.listen(searchInput, 'input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      state.search = searchInput.value.trim();
      const hash = state.search ? `#/?q=${encodeURIComponent(state.search)}` : '#/';
      history.replaceState(null, '', hash);
      load(true);
    }, 250);
  });
  scope.add(() => clearTimeout(debounce));

  function watchStock() {
    if (state.stopStock) state.stopStock();
    state.stopStock = null;
    const ids = [...state.cards.keys()];
    if (!ids.length) return;
    state.stopStock = scope.subscribe(STOCK_UPDATED, { productIds: ids }, {
      next: (data) => {
        const { stock } = data.stockUpdated;
        updateStock(stock.productId, stock.available);
      },
      error: () => {
        // Badges stay as loaded; a reconnect refetches.
      },
    });
  }

  function updateStock(productId, available) {
    const card = state.cards.get(String(productId));
    if (!card) return;
    const before = card.product.stock.available;
    card.product.stock.available = available;
    renderStock(card);
    if (stockText(before) !== stockText(available)) {
      announce(`${card.product.name}: ${stockText(available)}`);
    }
  }

  function renderStock(card) {
    const { available } = card.product.stock;
    card.badge.textContent = stockText(available);
    card.badge.dataset.level = stockLevel(available);
    card.badge.dataset.available = String(available);
    const soldOut = available <= 0;
    card.button.disabled = soldOut;
    card.qty.disabled = soldOut;
    card.qty.max = String(Math.max(1, Math.min(available, MAX_QUANTITY)));
    card.button.textContent = soldOut ? 'Sold out' : 'Add to cart';
  }

  function productCard(product) {
    const titleId = nextId('product');
    const qtyId = nextId('qty');
    const badge = h('span', { class: 'badge', 'aria-live': 'polite' });
    const qty = h('input', {
      id: qtyId, class: 'input', type: 'number', min: '1', value: '1', inputmode: 'numeric',
    });
    const button = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add to cart');
    const card = { product, badge, button, qty };
    const form = h('form', { class: 'add-row', onsubmit: (event) => {
      event.preventDefault();
      add(card);
    } },
    h('label', { for: qtyId, class: 'sr-only' }, `Quantity of ${product.name}`), qty, button);
    const article = h('article', { class: 'product', 'aria-labelledby': titleId, dataset: { productId: product.id } },
      h('div', { class: 'product-art', style: { '--hue': String(200 + ((Number(product.id) * 37) % 110)) } },
        h('span', { 'aria-hidden': 'true' }, initials(product.name)), badge),
      h('div', { class: 'product-body' },
        h('div', { class: 'product-title' },
          h('h2', { id: titleId }, product.name),
          h('span', { class: 'price' }, fmt(product.price))),
        h('p', { class: 'desc' }, product.description),
        h('div', { class: 'product-foot' }, form)));
    state.cards.set(String(product.id), card);
    renderStock(card);
    return article;
  }

  function add(card) {
    const { product } = card;
    const wanted = Math.floor(Number(card.qty.value));
    if (!Number.isFinite(wanted) || wanted < 1) {
      card.qty.value = '1';
      card.qty.focus();
      return;
    }
    const available = product.stock.available;
    const inCart = cart.quantityOf(product.id);
    const room = Math.max(0, Math.min(available, MAX_QUANTITY) - inCart);
    const adding = Math.min(wanted, room);
    if (adding <= 0) {
      toast(`You already have all ${available} available ${product.name} in your cart.`);
      return;
    }
    cart.add(product, adding);
    card.qty.value = '1';
    const note = adding < wanted ? ` (only ${available} available)` : '';
    toast(`Added ${adding} × ${product.name} to your cart${note}.`, { kind: 'success', timeout: 3000 });
    card.button.textContent = 'Added ✓';
    scope.timeout(() => renderStock(card), 1200);
  }

  function renderResults() {
    results.setAttribute('aria-busy', 'false');
    count.textContent = state.search
      ? `${state.total} ${state.total === 1 ? 'result' : 'results'} for “${state.search}”`
      : `${state.total} ${state.total === 1 ? 'product' : 'products'}`;
    if (!state.products.length) {
      fill(results, state.search
        ? emptyState('No products match your search', `Nothing found for “${state.search}”. Try another word.`,
          h('button', { type: 'button', class: 'btn', onclick: () => {
            searchInput.value = '';
            searchInput.dispatchEvent(new Event('input'));
          } }, 'Clear search'))
        : emptyState('No products yet', 'The shop has nothing on sale right now. Come back soon.'));
      fill(more);
      return;
    }
    state.cards.clear();
    fill(results, h('div', { class: 'grid' }, state.products.map(productCard)));
    fill(more, state.hasNext
      ? h('button', { type: 'button', class: 'btn', onclick: () => load(false) }, 'Load more')
      : null);
    watchStock();
  }

  async function load(reset) {
    const request = ++state.request;
    if (reset) {
      state.products = [];
      state.cursor = null;
      results.setAttribute('aria-busy', 'true');
      fill(results, loadingState('Loading products…'));
      fill(more);
    } else {
      const button = more.querySelector('button');
      if (button) button.disabled = true;
    }
    try {
      const data = await query(PRODUCTS, {
        after: reset ? null : state.cursor, search: state.search || null,
      });
      if (request !== state.request || !scope.alive) return;
      const page = data.products;
      state.products = reset ? page.edges.map((e) => e.node)
        : [...state.products, ...page.edges.map((e) => e.node)];
      state.cursor = page.pageInfo.endCursor;
      state.hasNext = page.pageInfo.hasNextPage;
      state.total = page.totalCount;
      renderResults();
    } catch (error) {
      if (request !== state.request || !scope.alive) return;
      results.setAttribute('aria-busy', 'false');
      fill(results, errorState('products', error, () => load(true)));
      fill(more);
    }
  }

  load(true);
  return { refresh: () => load(true) };
}
