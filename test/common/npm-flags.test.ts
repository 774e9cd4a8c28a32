import { describe, expect, it } from 'vitest';
import { flagsTakenByNpm } from '../../src/common/npm-flags.js';
import { LAUNCHER_SETTINGS, SHOP_COMPONENTS } from '../../src/launcher/components.js';

const TABLES = [LAUNCHER_SETTINGS, ...SHOP_COMPONENTS.map(({ settings }) => settings)];

describe('flagsTakenByNpm', () => {
  it('finds the shop flags npm kept as its own settings (npm start --port=8081 --log-level debug)', () => {
    const env = {
      npm_config_port: '8081',
      npm_config_log_level: 'debug',
      npm_config_restart_grace_ms: '5',
      npm_config_insecure_open_registry: 'true',
    };
    expect(flagsTakenByNpm(TABLES, env).sort()).toEqual([
      '--insecure-open-registry=true',
      '--log-level=debug',
      '--port=8081',
      '--restart-grace-ms=5',
    ]);
  });

  it("takes none of npm's own settings, as npm start sets them, for one of the shop's", () => {
    const env = {
      npm_config_cache: '/root/.npm',
      npm_config_user_agent: 'npm/11',
      npm_config_prefix: '/usr',
      npm_config_loglevel: 'warn',
      npm_config_node_gyp: '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
      npm_config_registry: 'https://registry.npmjs.org/',
      npm_config_cert: '',
      npm_config_key: '',
      npm_config_ca: '',
    };
    expect(flagsTakenByNpm(TABLES, env)).toEqual([]);
  });
});
