/** The problems `voltage validate` would report for a config folder made of `files`, each file named by its base name. */
import { loadConfig } from '../../runtime/config/load.js';
import { ConfigError, type ConfigIssue } from '../../runtime/errors.js';
import { writeSite } from './servers.js';

export function configIssues(files: Readonly<Record<string, string>>): ConfigIssue[] {
  try {
    loadConfig(writeSite(files));
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map((i) => ({ ...i, file: i.file.slice(i.file.lastIndexOf('/') + 1) }));
    throw e;
  }
  return [];
}
