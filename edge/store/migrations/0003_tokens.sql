CREATE TABLE `tokens` (
	`hash` text PRIMARY KEY NOT NULL,
	`expires_at` integer NOT NULL,
	`accepted_at` integer NOT NULL,
	`claims` text NOT NULL,
	`views` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `tokens_expires` ON `tokens` (`expires_at`);