// #/admin/inventory : stock per product, available and reserved ticking live (stockUpdated),
// with an inline "set" and a "+/-" adjustment with a reason.

import { query } from '../api.js';
import { toast } from '../feedback.js';
import { ADJUST_STOCK, INVENTORY, SET_STOCK, STOCK_UPDATED } from '../queries.js';
import { emptyState, errorState, fill, h, loadingState, nextId, setBusy } from '../ui.js';
import { adminNav } from './admin-nav.js';

export const title = 'Inventory';
const LOW = 10;

export function mount(root, { scope }) {
  const rows = new Map(); // product id -> { product, availableCell, reservedCell, error }
  let lowOnly = false;
  const lowId = nextId('low');
  const lowBox = h('input', { type: 'checkbox', id: lowId });
  const table = h('section', { class: 'card', 'aria-label': 'Inventory', 'aria-busy': 'true' }, loadingState('Loading inventory…'));
  fill(root, adminNav('/admin/inventory'),
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Inventory'), h('p', { class: 'sub' }, 'Available is what customers can buy; reserved is held by unpaid orders.')),
      h('div', { class: 'actions' }, h('label', { class: 'check', for: lowId }, lowBox, `Low stock only (under ${LOW})`))),
    table);
  scope.listen(lowBox, 'change', () => {
    lowOnly = lowBox.checked;
    load();
  });

  function setNumber(cell, value) {
    const text = value === null || value === undefined ? '—' : String(value);
    if (cell.textContent === text) return;
    const changed = cell.textContent !== '';
    cell.textContent = text;
    if (changed) {
      cell.classList.remove('flash');
      void cell.offsetWidth; // restart the animation
      cell.classList.add('flash');
    }
  }

  function applyStock(stock) {
    const row = rows.get(String(stock.productId));
    if (!row) return;
    row.product.stock = { ...row.product.stock, ...stock };
    setNumber(row.availableCell, stock.available);
    if (stock.reserved !== null && stock.reserved !== undefined) setNumber(row.reservedCell, stock.reserved);
  }

  async function mutate(button, row, document, variables, key) {
    row.error.textContent = '';
    setBusy(button, true);
    try {
      const data = await query(document, variables);
      const result = data[key];
      if (result.__typename === 'StockPayload') {
        applyStock(result.stock);
        toast(`${row.product.name}: ${result.stock.available} available.`, { kind: 'success', timeout: 2500 });
        return true;
      }
      row.error.textContent = result.message;
      return false;
    } catch (error) {
      row.error.textContent = error.message;
      return false;
    } finally {
      if (button.isConnected) setBusy(button, false);
    }
  }

  function tableRow(product) {
    const availableCell = h('td', { class: 'num', dataset: { col: 'available' } });
    const reservedCell = h('td', { class: 'num', dataset: { col: 'reserved' } });
    const error = h('div', { class: 'row-error', role: 'alert' });
    const row = { product, availableCell, reservedCell, error };
    rows.set(String(product.id), row);
    setNumber(availableCell, product.stock.available);
    setNumber(reservedCell, product.stock.reserved);

    const setId = nextId('set');
    const setInput = h('input', { id: setId, class: 'input input-num', type: 'number', min: '0', inputmode: 'numeric',
      placeholder: String(product.stock.available) });
    const setButton = h('button', { type: 'submit', class: 'btn btn-sm' }, 'Set');
    const setForm = h('form', { class: 'inline-form' },
      h('label', { for: setId, class: 'sr-only' }, `Set available stock of ${product.name}`), setInput, setButton);
    setForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const value = Number(setInput.value);
      if (setInput.value === '' || !Number.isInteger(value) || value < 0) {
        error.textContent = 'Enter a whole number, 0 or more.';
        setInput.focus();
        return;
      }
      if (await mutate(setButton, row, SET_STOCK, { productId: product.id, available: value }, 'setStock')) {
        setInput.value = '';
      }
    });

    const deltaId = nextId('delta');
    const reasonId = nextId('reason');
    const deltaInput = h('input', { id: deltaId, class: 'input input-num', type: 'number', inputmode: 'numeric', placeholder: '±0' });
    const reasonInput = h('input', { id: reasonId, class: 'input reason', type: 'text', placeholder: 'Reason', maxlength: '200' });
    const adjustButton = h('button', { type: 'submit', class: 'btn btn-sm' }, 'Adjust');
    const adjustForm = h('form', { class: 'inline-form' },
      h('label', { for: deltaId, class: 'sr-only' }, `Change in stock of ${product.name} (plus or minus)`), deltaInput,
      h('label', { for: reasonId, class: 'sr-only' }, `Reason for the change to ${product.name}`), reasonInput,
      adjustButton);
    adjustForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const delta = Number(deltaInput.value);
      if (deltaInput.value === '' || !Number.isInteger(delta) || delta === 0) {
        error.textContent = 'Enter a change such as 10 or -3.';
        deltaInput.focus();
        return;
      }
      const reason = reasonInput.value.trim() || null;
      if (await mutate(adjustButton, row, ADJUST_STOCK, { productId: product.id, delta, reason }, 'adjustStock')) {
        deltaInput.value = '';
        reasonInput.value = '';
      }
    });

    return h('tr', { dataset: { productId: product.id } },
      h('td', {},
        h('div', { class: 'row' }, h('strong', {}, product.name), product.active ? null : h('span', { class: 'tag' }, 'Inactive')),
        h('div', { class: 'cell-sub mono' }, product.sku), error),
      availableCell, reservedCell,
      h('td', {}, setForm),
      h('td', {}, adjustForm));
  }

  let stopStock = null;
  let request = 0;
  async function load() {
    const mine = ++request;
    table.setAttribute('aria-busy', 'true');
    try {
      const data = await query(INVENTORY, { lowStockBelow: lowOnly ? LOW : null });
      if (mine !== request || !scope.alive) return;
      rows.clear();
      const products = data.inventory.edges.map((e) => e.node);
      table.setAttribute('aria-busy', 'false');
      if (!products.length) {
        fill(table, emptyState(lowOnly ? 'Nothing is running low' : 'No products yet',
          lowOnly ? `Every product has ${LOW} or more available.` : 'Create one under Products.'));
      } else {
        fill(table, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col', class: 'num' }, 'Available'),
            h('th', { scope: 'col', class: 'num' }, 'Reserved'), h('th', { scope: 'col' }, 'Set available'),
            h('th', { scope: 'col' }, 'Adjust (+/−) with reason'))),
          h('tbody', {}, products.map(tableRow)))));
      }
      if (!stopStock) {
        // Every product's stock, live (admins also see `reserved`).
        stopStock = scope.subscribe(STOCK_UPDATED, { productIds: null }, {
          next: (d) => applyStock(d.stockUpdated.stock),
        });
      }
    } catch (error) {
      if (mine !== request || !scope.alive) return;
      table.setAttribute('aria-busy', 'false');
      fill(table, errorState('inventory', error, load));
    }
  }

  load();
  return { refresh: load };
}
