-- Accuracy as a rollout soak check (core.fleet.soak): an agent whose live accuracy on the
-- labels that arrive during its soak falls more than max_accuracy_drop below the version's
-- holdout accuracy, once min_labels back it, fails the soak. Kept per rollout for resume.
ALTER TABLE rollout ADD COLUMN min_labels INTEGER DEFAULT 300;
ALTER TABLE rollout ADD COLUMN max_accuracy_drop DOUBLE DEFAULT 0.05;
