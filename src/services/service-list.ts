import { checkServiceList } from './common/define-service.js';
import { goodsService } from './goods/goods-service.js';
import { membersService } from './members/members-service.js';
import { purchasesService } from './purchases/purchases-service.js';

/**
 * Every service of the shop, in start order: the one list the launcher, the README's configuration
 * table and the tests take them from. A new service is a folder with its definition and a main.ts
 * that holds signals and then imports and calls runService (as goods' does), plus one entry here.
 */
export const SHOP_SERVICES = checkServiceList([goodsService, membersService, purchasesService]);

/** The name of a service of the shop: "goods", "members" or "purchases". */
export type ShopServiceName = (typeof SHOP_SERVICES)[number]['name'];
