import { status } from '@grpc/grpc-js';
import { ServiceError } from '../../common/service-error.js';

/** The book's answer to a list with nothing in it. */
export const NO_DATA = 'no data';

/** NOT_FOUND "no data": an empty list is a failure in the book, and REST clients rely on that. */
export function noData(): ServiceError {
  return new ServiceError(status.NOT_FOUND, NO_DATA);
}
