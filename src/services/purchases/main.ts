import { runService } from '../common/run-service.js';
import { purchasesService } from './purchases-service.js';

runService(purchasesService);
