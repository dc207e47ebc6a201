// drizzle-kit configuration: `npm run db:generate` turns changes in schema.ts into a migration.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './edge/store/schema.ts',
  out: './edge/store/migrations',
});
