/**
 * Every migration, in order. Listed statically (rather than discovered on disk) so they load the
 * same way under tsx, vitest and any bundler. `npm run migration:create` appends to this list.
 */
import { Migration20261121203133_initial } from './Migration20261121203133_initial.ts';
import { Migration20261121205310_accounts } from './Migration20261121205310_accounts.ts';
import { Migration20261121220000_files } from './Migration20261121220000_files.ts';
import { Migration20261202044603_leases } from './Migration20261202044603_leases.ts';
import { Migration20261207234000_repositories } from './Migration20261207234000_repositories.ts';
import { Migration20261208020000_repository_commits_keys } from './Migration20261208020000_repository_commits_keys.ts';
import { Migration20261208020401_schedules } from './Migration20261208020401_schedules.ts';
import { Migration20261208023833_webhooks } from './Migration20261208023833_webhooks.ts';
import { Migration20261208025732_badges } from './Migration20261208025732_badges.ts';
import { Migration20261208030411_mail } from './Migration20261208030411_mail.ts';

export const migrationsList = [
  { name: 'Migration20261121203133_initial', class: Migration20261121203133_initial },
  { name: 'Migration20261121205310_accounts', class: Migration20261121205310_accounts },
  { name: 'Migration20261121220000_files', class: Migration20261121220000_files },
  { name: 'Migration20261202044603_leases', class: Migration20261202044603_leases },
  { name: 'Migration20261207234000_repositories', class: Migration20261207234000_repositories },
  {
    name: 'Migration20261208020000_repository_commits_keys',
    class: Migration20261208020000_repository_commits_keys,
  },
  { name: 'Migration20261208020401_schedules', class: Migration20261208020401_schedules },
  { name: 'Migration20261208023833_webhooks', class: Migration20261208023833_webhooks },
  { name: 'Migration20261208025732_badges', class: Migration20261208025732_badges },
  { name: 'Migration20261208030411_mail', class: Migration20261208030411_mail },
];
