import { Migration } from '@mikro-orm/migrations';

export class Migration20261208025732_badges extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "namespaces" add column "encrypted_badge_token" text null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "namespaces" drop column "encrypted_badge_token";`);
  }
}
