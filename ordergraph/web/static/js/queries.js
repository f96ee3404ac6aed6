// Every GraphQL document the web client sends, and nothing else. Kept in one module so a
// server test can hold them to the API's limits (depth, aliases, tokens, cost): each one is
// small, uses no aliases, and gives every connection a literal page size (at most 100) so
// the server's cost rule counts what is really asked for.

const USER_ERROR = 'code message field';
const MONEY = 'amount currency';

const ADDRESS = 'name line1 line2 city postalCode region country';

const PRODUCT_CARD = `id sku name description active price { ${MONEY} } stock { productId available }`;

const ORDER_SUMMARY = `
  id number status version createdAt updatedAt reservedUntil nextStatuses
  total { ${MONEY} }
  shippingAddress { ${ADDRESS} }
  customer { id email }`;

const ORDER_DETAIL = `
  ${ORDER_SUMMARY}
  items { quantity unitPrice { ${MONEY} } total { ${MONEY} } product { id sku name } }
  subtotal { ${MONEY} } shipping { ${MONEY} }
  payment { provider status lastError }
  history { id at actorKind action before after actorRole actor { email } }`;

const ORDER_RESULT = `
  __typename
  ... on OrderPayload { order { ${ORDER_DETAIL} } }
  ... on UserError { ${USER_ERROR} }
  ... on InvalidTransitionError { from to }
  ... on PaymentError { declineCode }`;

const AUTH_RESULT = `
  __typename
  ... on AuthPayload { token expiresAt user { id email name role } }
  ... on UserError { ${USER_ERROR} }
  ... on RateLimitedError { retryAfterSeconds }`;

// ---- session ----------------------------------------------------------------------------

export const ME = `query Me { me { id email name role } }`;

export const LOGIN = `
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { ${AUTH_RESULT} }
}`;

export const REGISTER = `
mutation Register($input: RegisterInput!) {
  register(input: $input) { ${AUTH_RESULT} }
}`;

export const REQUEST_PASSWORD_RESET = `
mutation RequestPasswordReset($email: String!) { requestPasswordReset(email: $email) { ok } }`;

export const RESET_PASSWORD = `
mutation ResetPassword($token: String!, $newPassword: String!) {
  resetPassword(token: $token, newPassword: $newPassword) { ${AUTH_RESULT} }
}`;

// ---- catalog ----------------------------------------------------------------------------

export const PRODUCTS = `
query Products($after: String, $search: String) {
  products(first: 24, after: $after, search: $search) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { ${PRODUCT_CARD} } }
  }
}`;

export const STOCK_UPDATED = `
subscription StockUpdated($productIds: [ID!]) {
  stockUpdated(productIds: $productIds) {
    eventId type at
    stock { productId available reserved updatedAt }
  }
}`;

// ---- checkout and payment ---------------------------------------------------------------

export const SHIPPING_RATES = `
query ShippingRates { shippingRates { flatRate { ${MONEY} } freeShippingOver { ${MONEY} } required } }`;

export const MY_ADDRESS = `query MyAddress { me { id defaultAddress { ${ADDRESS} } } }`;

export const UPDATE_DEFAULT_ADDRESS = `
mutation UpdateDefaultAddress($address: AddressInput) {
  updateDefaultAddress(address: $address) {
    __typename
    ... on UserPayload { user { id defaultAddress { ${ADDRESS} } } }
    ... on UserError { ${USER_ERROR} }
  }
}`;

export const PAYMENT_CONFIG = `query PaymentConfig { paymentConfig { provider publishableKey stripeJsUrl mode } }`;

export const CHECKOUT = `
mutation Checkout($input: CheckoutInput!) {
  checkout(input: $input) {
    __typename
    ... on CheckoutPayload {
      clientSecret
      order { id number status subtotal { ${MONEY} } shipping { ${MONEY} } total { ${MONEY} } }
    }
    ... on UserError { ${USER_ERROR} }
    ... on InsufficientStockError { productId requested available }
    ... on PaymentError { declineCode }
  }
}`;

export const PAY_ORDER = `
mutation PayOrder($id: ID!, $paymentMethodId: String!) {
  payOrder(id: $id, paymentMethodId: $paymentMethodId) {
    __typename
    ... on PayOrderPayload { requiresAction clientSecret order { id number status version } }
    ... on UserError { ${USER_ERROR} }
    ... on InvalidTransitionError { from to }
    ... on PaymentError { declineCode }
  }
}`;

export const SYNC_PAYMENT = `
mutation SyncPayment($id: ID!) { syncPayment(id: $id) { ${ORDER_RESULT} } }`;

// ---- orders -----------------------------------------------------------------------------

export const MY_ORDERS = `
query MyOrders($after: String) {
  myOrders(first: 20, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { ${ORDER_SUMMARY} items { quantity product { id name } } } }
  }
}`;

export const ORDER = `query Order($id: ID!) { order(id: $id) { ${ORDER_DETAIL} } }`;

export const ORDER_UPDATED = `
subscription OrderUpdated($id: ID!) {
  orderUpdated(id: $id) { eventId type previousStatus at order { ${ORDER_DETAIL} } }
}`;

export const ORDER_EVENTS = `
subscription OrderEvents {
  orderEvents { eventId type previousStatus at order { ${ORDER_SUMMARY} items { quantity product { id name } } } }
}`;

export const CANCEL_ORDER = `mutation CancelOrder($id: ID!) { cancelOrder(id: $id) { ${ORDER_RESULT} } }`;

// ---- admin ------------------------------------------------------------------------------

export const ADMIN_ORDERS = `
query AdminOrders($status: OrderStatus) {
  orders(first: 50, status: $status) {
    totalCount
    edges { node { ${ORDER_SUMMARY} items { quantity product { id name } } } }
  }
}`;

export const FULFILL_ORDER = `mutation FulfillOrder($id: ID!) { fulfillOrder(id: $id) { ${ORDER_RESULT} } }`;

export const REFUND_ORDER = `mutation RefundOrder($id: ID!) { refundOrder(id: $id) { ${ORDER_RESULT} } }`;

export const INVENTORY = `
query Inventory($lowStockBelow: Int) {
  inventory(first: 100, lowStockBelow: $lowStockBelow) {
    totalCount
    edges { node { id sku name active stock { productId available reserved updatedAt } } }
  }
}`;

const STOCK_RESULT = `
  __typename
  ... on StockPayload { stock { productId available reserved updatedAt } }
  ... on UserError { ${USER_ERROR} }`;

export const SET_STOCK = `
mutation SetStock($productId: ID!, $available: Int!) {
  setStock(productId: $productId, available: $available) { ${STOCK_RESULT} }
}`;

export const ADJUST_STOCK = `
mutation AdjustStock($productId: ID!, $delta: Int!, $reason: String) {
  adjustStock(productId: $productId, delta: $delta, reason: $reason) { ${STOCK_RESULT} }
}`;

const PRODUCT_ADMIN = `id sku name description active createdAt updatedAt price { ${MONEY} } stock { productId available reserved }`;

export const ADMIN_PRODUCTS = `
query AdminProducts {
  products(first: 100, includeInactive: true) {
    totalCount
    edges { node { ${PRODUCT_ADMIN} } }
  }
}`;

const PRODUCT_RESULT = `
  __typename
  ... on ProductPayload { product { ${PRODUCT_ADMIN} } }
  ... on UserError { ${USER_ERROR} }`;

export const CREATE_PRODUCT = `
mutation CreateProduct($input: CreateProductInput!) { createProduct(input: $input) { ${PRODUCT_RESULT} } }`;

export const UPDATE_PRODUCT = `
mutation UpdateProduct($id: ID!, $input: UpdateProductInput!) {
  updateProduct(id: $id, input: $input) { ${PRODUCT_RESULT} }
}`;

export const AUDIT_LOG = `
query AuditLog($after: String, $entityType: String, $entityId: ID, $actorId: ID) {
  auditLog(first: 50, after: $after, entityType: $entityType, entityId: $entityId, actorId: $actorId) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id at actorKind action entityType entityId before after actor { id email } } }
  }
}`;

export const SALES_REPORT = `
query SalesReport($from: DateTime!, $to: DateTime!, $granularity: Granularity) {
  salesReport(from: $from, to: $to, granularity: $granularity) {
    from to granularity
    revenue { ${MONEY} } grossSales { ${MONEY} } refunds { ${MONEY} }
    ordersPaid ordersRefunded averageOrderValue { ${MONEY} }
    ordersByStatus { status count }
    checkoutsStarted checkoutsPaid conversionRate
    series { start revenue { ${MONEY} } ordersPaid }
    topProductsByUnits { units revenue { ${MONEY} } product { id name } }
    topProductsByRevenue { units revenue { ${MONEY} } product { id name } }
    runningOut { available unitsPerDay daysLeft product { id name } }
  }
}`;

// Only that something happened: the Sales page asks for the report again.
export const SALES_ORDER_EVENTS = `subscription SalesOrderEvents { orderEvents { eventId type } }`;

// ---- local mail mode (admins, development only) ----------------------------------------

export const LOCAL_MAILBOX = `
query LocalMailbox { localMailbox(first: 50) { id receivedAt from to subject text html } }`;
