import { runService } from '../common/run-service.js';
import { goodsService } from './goods-service.js';

runService(goodsService);
