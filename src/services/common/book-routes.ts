import type { Route } from '../../gen/distributor.js';

/**
 * Transitional: the REST routes each service announces at registration, by fully qualified gRPC
 * service. They are kept out of the service definitions on purpose: the routes belong in the
 * contract, as google.api.http annotations in proto/ (issue 10 §1), and this table goes, with its
 * one use in start-service.ts, once the gateway reads them from there. A service not listed here
 * registers without routes (reachable over gRPC, not through the gateway).
 *
 * The book's REST surface: POST shows no body fields, so the REST answer stays the seed's bare
 * envelope though gRPC returns the new id; GET /members is sign-in and shows `userid`.
 */
const BOOK_ROUTES: Readonly<Record<string, readonly Route[]>> = {
  'shop.v1.GoodsService': [
    {
      httpMethod: 'POST',
      path: '/goods',
      grpcMethod: 'shop.v1.GoodsService/CreateGoods',
      responseFields: [],
    },
    {
      httpMethod: 'GET',
      path: '/goods',
      grpcMethod: 'shop.v1.GoodsService/ListGoods',
      responseFields: ['results'],
    },
    {
      httpMethod: 'DELETE',
      path: '/goods',
      grpcMethod: 'shop.v1.GoodsService/DeleteGoods',
      responseFields: [],
    },
  ],
  'shop.v1.MembersService': [
    {
      httpMethod: 'POST',
      path: '/members',
      grpcMethod: 'shop.v1.MembersService/CreateMember',
      responseFields: [],
    },
    {
      httpMethod: 'GET',
      path: '/members',
      grpcMethod: 'shop.v1.MembersService/SignIn',
      responseFields: ['userid'],
    },
    {
      httpMethod: 'DELETE',
      path: '/members',
      grpcMethod: 'shop.v1.MembersService/DeleteMember',
      responseFields: [],
    },
  ],
  'shop.v1.PurchasesService': [
    {
      httpMethod: 'POST',
      path: '/purchases',
      grpcMethod: 'shop.v1.PurchasesService/CreatePurchase',
      responseFields: [],
    },
    {
      httpMethod: 'GET',
      path: '/purchases',
      grpcMethod: 'shop.v1.PurchasesService/ListPurchases',
      responseFields: ['results'],
    },
  ],
};

/** The REST routes a gRPC service announces (transitional, see above); none for one not listed. */
export function bookRoutes(grpcServiceName: string): readonly Route[] {
  return BOOK_ROUTES[grpcServiceName] ?? [];
}
