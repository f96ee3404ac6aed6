// The admin section's tabs, with a link to GraphiQL.

import { ICONS, h, svgIcon } from '../ui.js';

const TABS = [
  ['/admin', 'Orders'],
  ['/admin/sales', 'Sales'],
  ['/admin/inventory', 'Inventory'],
  ['/admin/products', 'Products'],
  ['/admin/audit', 'Audit log'],
];

export function adminNav(active) {
  return h('nav', { class: 'subnav', 'aria-label': 'Admin' },
    TABS.map(([path, label]) => h('a', { href: `#${path}`, 'aria-current': path === active ? 'page' : false }, label)),
    h('a', { class: 'ext', href: '/graphql', target: '_blank', rel: 'noopener' },
      h('span', { class: 'row' }, 'GraphiQL', svgIcon(ICONS.external, 13))));
}
