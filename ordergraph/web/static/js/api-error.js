// The client's error: ApiError (a message, a code such as NETWORK or UNAUTHENTICATED, details),
// and the one made from a GraphQL `errors` list.

export class ApiError extends Error {
  constructor(message, code = 'ERROR', details = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    Object.assign(this, details);
  }
}

/** The ApiError for the first of a GraphQL `errors` list (its extensions.code, all the errors). */
export function errorFrom(errors) {
  const first = errors[0] || {};
  const code = (first.extensions && first.extensions.code) || 'ERROR';
  return new ApiError(first.message || 'Something went wrong.', code, { errors });
}
