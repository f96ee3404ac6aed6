"""Use cases: one verb-named async function each; each opens its unit of work and commits."""
