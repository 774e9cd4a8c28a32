// Preloaded with --import by a test: loads the hooks below, which slow down one module's loading.
import { register } from 'node:module';

register('./slow-loading-hooks.mjs', import.meta.url);
