import { runService } from '../common/run-service.js';
import { membersService } from './members-service.js';

runService(membersService);
