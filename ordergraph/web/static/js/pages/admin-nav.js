// The admin section's tabs, with a link to GraphiQL. "Mail" shows only in local mail mode
// (the server has its own SMTP sink; never in production).

import { query } from '../api.js';
import { LOCAL_MAILBOX } from '../queries.js';
import { ICONS, h, svgIcon } from '../ui.js';

let mailboxAvailable = null; // a promise, asked once per page load

function hasLocalMailbox() {
  if (!mailboxAvailable) {
    mailboxAvailable = query(LOCAL_MAILBOX).then((data) => data.localMailbox !== null, () => false);
  }
  return mailboxAvailable;
}

const TABS = [
  ['/admin', 'Orders'],
  ['/admin/sales', 'Sales'],
  ['/admin/inventory', 'Inventory'],
  ['/admin/products', 'Products'],
  ['/admin/audit', 'Audit log'],
];

export function adminNav(active) {
  const mail = h('a', { href: '#/admin/mail', 'aria-current': active === '/admin/mail' ? 'page' : false,
    hidden: active !== '/admin/mail' }, 'Mail');
  if (mail.hidden) hasLocalMailbox().then((yes) => { mail.hidden = !yes; });
  return h('nav', { class: 'subnav', 'aria-label': 'Admin' },
    TABS.map(([path, label]) => h('a', { href: `#${path}`, 'aria-current': path === active ? 'page' : false }, label)),
    mail,
    h('a', { class: 'ext', href: '/graphql', target: '_blank', rel: 'noopener' },
      h('span', { class: 'row' }, 'GraphiQL', svgIcon(ICONS.external, 13))));
}
