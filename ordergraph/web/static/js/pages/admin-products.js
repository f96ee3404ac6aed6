// #/admin/products : every product (active or not); create, edit, deactivate / reactivate.

import { query } from '../api.js';
import { confirmDialog, toast } from '../feedback.js';
import { fmt, moneyInput, parseMoney } from '../format.js';
import { ADMIN_PRODUCTS, CREATE_PRODUCT, UPDATE_PRODUCT } from '../queries.js';
import {
  ICONS, emptyState, errorState, fieldError, fill, formField, h, loadingState, nextId, setBusy,
  svgIcon,
} from '../ui.js';
import { adminNav } from './admin-nav.js';

export const title = 'Products';

export function mount(root, { scope }) {
  let products = [];
  const table = h('section', { class: 'card', 'aria-label': 'Products', 'aria-busy': 'true' }, loadingState('Loading products…'));
  const newButton = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => openEditor(null) }, 'New product');
  fill(root, adminNav('/admin/products'),
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Products'), h('p', { class: 'sub' }, 'Inactive products are hidden from the shop and cannot be bought.')),
      h('div', { class: 'actions' }, newButton)),
    table);

  function render() {
    table.setAttribute('aria-busy', 'false');
    if (!products.length) {
      fill(table, emptyState('No products yet', 'Create the first one; it appears in the shop at once.',
        h('button', { type: 'button', class: 'btn btn-primary', onclick: () => openEditor(null) }, 'New product')));
      return;
    }
    fill(table, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col', class: 'num' }, 'Price'),
        h('th', { scope: 'col', class: 'num' }, 'Available'), h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', {}, products.map((p) => h('tr', { dataset: { productId: p.id } },
        h('td', {}, h('strong', {}, p.name), h('div', { class: 'cell-sub mono' }, p.sku)),
        h('td', { class: 'num' }, fmt(p.price)),
        h('td', { class: 'num' }, String(p.stock.available)),
        h('td', {}, h('span', { class: 'badge', dataset: { level: p.active ? 'ok' : 'off' } }, p.active ? 'Active' : 'Inactive')),
        h('td', {}, h('div', { class: 'row', style: { justifyContent: 'flex-end' } },
          h('button', { type: 'button', class: 'btn btn-sm', 'aria-label': `Edit ${p.name}`, onclick: () => openEditor(p) }, 'Edit'),
          h('button', { type: 'button', class: `btn btn-sm ${p.active ? 'btn-danger' : ''}`,
            'aria-label': `${p.active ? 'Deactivate' : 'Activate'} ${p.name}`,
            onclick: (event) => toggle(p, event.currentTarget) }, p.active ? 'Deactivate' : 'Activate')))))))));
  }

  function replace(product) {
    const i = products.findIndex((p) => p.id === product.id);
    if (i >= 0) products[i] = product;
    else products.push(product);
    render();
  }

  async function toggle(product, button) {
    if (product.active) {
      const ok = await confirmDialog({ title: `Deactivate ${product.name}?`,
        body: 'It disappears from the shop at once; existing orders are not affected. You can activate it again.',
        confirm: 'Deactivate', cancel: 'Back', danger: true });
      if (!ok) return;
    }
    setBusy(button, true);
    try {
      const data = await query(UPDATE_PRODUCT, { id: product.id, input: { active: !product.active } });
      const result = data.updateProduct;
      if (result.__typename === 'ProductPayload') {
        replace(result.product);
        toast(`${result.product.name} is ${result.product.active ? 'on sale again' : 'hidden from the shop'}.`, { kind: 'success' });
      } else {
        toast(result.message, { kind: 'error' });
      }
    } catch (error) {
      toast(error.message, { kind: 'error' });
    } finally {
      if (button.isConnected) setBusy(button, false);
    }
  }

  function openEditor(product) {
    const creating = !product;
    const currency = product ? product.price.currency : 'usd';
    const titleId = nextId('editor');
    const fields = {
      sku: creating ? formField({ label: 'SKU', name: 'sku', hint: 'Lower-case letters, digits and dashes, e.g. desk-lamp.',
        attrs: { required: true, autocomplete: 'off', spellcheck: 'false' } }) : null,
      name: formField({ label: 'Name', name: 'name', value: product ? product.name : '', attrs: { required: true } }),
      description: formField({ label: 'Description', name: 'description', textarea: true, value: product ? product.description : '' }),
      priceCents: formField({ label: `Price (${currency.toUpperCase()})`, name: 'price', value: product ? moneyInput(product.price.amount, currency) : '',
        hint: 'For example 19.99', attrs: { inputmode: 'decimal', required: true } }),
      initialStock: creating ? formField({ label: 'Initial stock', name: 'stock', type: 'number', value: '0', attrs: { min: '0', inputmode: 'numeric' } }) : null,
    };
    const activeId = nextId('active');
    const active = h('input', { type: 'checkbox', id: activeId });
    active.checked = product ? product.active : true;
    const formError = h('div', { class: 'form-error', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'btn btn-primary' }, creating ? 'Create product' : 'Save changes');
    const dialog = h('dialog', { class: 'panel', 'aria-labelledby': titleId });
    const close = () => dialog.close();
    const form = h('form', { novalidate: true, style: { display: 'flex', flexDirection: 'column', height: '100%' } },
      h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, creating ? 'New product' : `Edit ${product.name}`),
        h('button', { type: 'button', class: 'btn btn-ghost icon-btn', 'aria-label': 'Close', onclick: close }, svgIcon(ICONS.close))),
      h('div', { class: 'dialog-body form', style: { flex: '1', overflowY: 'auto' } }, formError,
        Object.values(fields).filter(Boolean).map((f) => f.wrap),
        h('label', { class: 'check', for: activeId }, active, 'On sale (visible in the shop)')),
      h('div', { class: 'dialog-foot' }, h('button', { type: 'button', class: 'btn', onclick: close }, 'Cancel'), save));
    dialog.append(form);
    dialog.addEventListener('close', () => dialog.remove());
    scope.add(() => { if (dialog.open) dialog.close(); });

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      formError.textContent = '';
      for (const f of Object.values(fields)) if (f) fieldError(f.input, f.error, '');
      const price = parseMoney(fields.priceCents.input.value, currency);
      if (price === null || price <= 0) {
        fieldError(fields.priceCents.input, fields.priceCents.error, 'Enter a price such as 19.99.');
        fields.priceCents.input.focus();
        return;
      }
      const input = {
        name: fields.name.input.value.trim(),
        description: fields.description.input.value.trim(),
        priceCents: price,
        active: active.checked,
      };
      if (creating) {
        input.sku = fields.sku.input.value.trim();
        input.initialStock = Number(fields.initialStock.input.value || 0);
      }
      setBusy(save, true, creating ? 'Creating…' : 'Saving…');
      try {
        const data = creating ? await query(CREATE_PRODUCT, { input })
          : await query(UPDATE_PRODUCT, { id: product.id, input });
        const result = creating ? data.createProduct : data.updateProduct;
        if (result.__typename === 'ProductPayload') {
          replace(result.product);
          toast(creating ? `${result.product.name} created.` : `${result.product.name} saved.`, { kind: 'success' });
          dialog.close();
          return;
        }
        const target = result.field && fields[result.field === 'available' ? 'initialStock' : result.field];
        if (target) {
          fieldError(target.input, target.error, result.message);
          target.input.focus();
        } else {
          formError.textContent = result.message;
        }
      } catch (error) {
        formError.textContent = error.message;
      } finally {
        if (save.isConnected) setBusy(save, false);
      }
    });

    document.body.append(dialog);
    dialog.showModal();
    (creating ? fields.sku : fields.name).input.focus();
  }

  async function load() {
    try {
      const data = await query(ADMIN_PRODUCTS, {});
      if (!scope.alive) return;
      products = data.products.edges.map((e) => e.node);
      render();
    } catch (error) {
      if (!scope.alive) return;
      table.setAttribute('aria-busy', 'false');
      fill(table, errorState('products', error, () => {
        fill(table, loadingState('Loading products…'));
        load();
      }));
    }
  }

  load();
  return { refresh: load };
}
