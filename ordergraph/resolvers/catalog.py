"""Catalog fields: products, stock, and the admin mutations that change them."""

from __future__ import annotations

from ordergraph.domain.errors import NotFound, ValidationFailed
from ordergraph.domain.model import Actor, Product, Stock
from ordergraph.domain.services import catalog
from ordergraph.resolvers.context import RequestContext
from ordergraph.resolvers.pagination import Connection, decode_cursor, page_size, parse_id

PRODUCT_CURSOR = "product"
MAX_SEARCH_LENGTH = 200  # characters of `products(search:)`


async def products(ctx: RequestContext, *, first: int | None, after: str | None,
                   search: str | None, include_inactive: bool | None
                   ) -> tuple[Connection[Product], dict[int, Stock]]:
    """Active products for everyone; inactive ones too when an admin asks for them."""
    search = _search_text(search)
    include_inactive = bool(include_inactive) and await ctx.is_admin()
    page, stocks = await ctx.deps.reader.products_page(
        first=page_size(first, 20), after_id=decode_cursor(PRODUCT_CURSOR, after),
        search=search, include_inactive=include_inactive)
    ctx.loaders.stock.prime_many(stocks)  # read with the page: no second query
    return Connection.from_page(PRODUCT_CURSOR, page), stocks


def _search_text(search: str | None) -> str | None:
    """The words to look for; VALIDATION_FAILED when too long to be a person's search (a
    huge LIKE pattern costs the database, and SQLite refuses one over 50,000 bytes)."""
    search = (search or "").strip()
    if len(search) > MAX_SEARCH_LENGTH:
        raise ValidationFailed(f"Search for at most {MAX_SEARCH_LENGTH} characters.",
                               field="search")
    return search or None


async def inventory(ctx: RequestContext, *, first: int | None, after: str | None,
                    low_stock_below: int | None
                    ) -> tuple[Connection[Product], dict[int, Stock]]:
    """Admins: every product (active or not), optionally only those running low."""
    await ctx.require_admin()
    page, stocks = await ctx.deps.reader.products_page(
        first=page_size(first, 50), after_id=decode_cursor(PRODUCT_CURSOR, after), search=None,
        include_inactive=True, low_stock_below=low_stock_below)
    ctx.loaders.stock.prime_many(stocks)
    return Connection.from_page(PRODUCT_CURSOR, page), stocks


async def product(ctx: RequestContext, *, id: str | None, sku: str | None) -> Product | None:
    """One product by id or sku; an inactive one only for admins."""
    found: Product | None = None
    if id is not None:
        product_id = parse_id(id)
        found = await ctx.loaders.product.load(product_id) if product_id else None
    elif sku is not None:
        found = await ctx.deps.reader.product_by_sku(sku)
    if found is not None and not found.active and not await ctx.is_admin():
        return None
    return found


async def stock_of(ctx: RequestContext, product_id: int) -> Stock:
    stock = await ctx.loaders.stock.load(product_id)
    if stock is None:  # every product has its row (same transaction); this is a bug
        raise LookupError(f"product {product_id} has no inventory row")
    return stock


async def create_product(ctx: RequestContext, *, sku: str, name: str, description: str | None,
                         price_cents: int, initial_stock: int | None,
                         active: bool | None) -> Product:
    viewer = await ctx.require_admin()
    s = ctx.deps
    return await catalog.create_product(
        uow=s.uow(), clock=s.clock, actor=Actor.user(viewer.id), sku=sku, name=name,
        description=description, price_cents=price_cents, initial_stock=initial_stock or 0,
        active=True if active is None else active, currency=s.currency)


async def update_product(ctx: RequestContext, *, id: str, name: str | None,
                         description: str | None, price_cents: int | None,
                         active: bool | None) -> Product:
    viewer = await ctx.require_admin()
    product_id = _existing_id(id, field="id")
    s = ctx.deps
    return await catalog.update_product(
        uow=s.uow(), clock=s.clock, actor=Actor.user(viewer.id), product_id=product_id,
        name=name, description=description, price_cents=price_cents, active=active)


async def set_stock(ctx: RequestContext, *, product_id: str, available: int) -> Stock:
    viewer = await ctx.require_admin()
    s = ctx.deps
    return await catalog.set_stock(uow=s.uow(), clock=s.clock, actor=Actor.user(viewer.id),
                                   product_id=_existing_id(product_id, field="productId"),
                                   available=available)


async def adjust_stock(ctx: RequestContext, *, product_id: str, delta: int,
                       reason: str | None) -> Stock:
    viewer = await ctx.require_admin()
    s = ctx.deps
    return await catalog.adjust_stock(uow=s.uow(), clock=s.clock, actor=Actor.user(viewer.id),
                                      product_id=_existing_id(product_id, field="productId"),
                                      delta=delta, reason=reason)


def _existing_id(raw: str, *, field: str) -> int:
    parsed = parse_id(raw)
    if parsed is None:
        raise NotFound(f"No product with id {raw!r}.", field=field)
    return parsed
