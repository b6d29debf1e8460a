-- Upgrade (safe to apply twice): review decisions recorded before decision_kind/decision_person_id
-- existed were one text column, 'merge:<person uuid>' | 'new'; identity items dismissed in review had
-- no decision at all. Converted once into the columns; the text column is left as it was.
UPDATE ice_pipeline.review_queue
SET decision_kind = 'merge_into', decision_person_id = substring(decision from 7)::uuid
WHERE decision_kind IS NULL AND kind = 'identity_conflict'
  AND decision ~ '^merge:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
UPDATE ice_pipeline.review_queue
SET decision_kind = 'new_person'
WHERE decision_kind IS NULL AND kind = 'identity_conflict' AND decision = 'new';
UPDATE ice_pipeline.review_queue
SET decision_kind = 'dismiss'
WHERE decision_kind IS NULL AND kind = 'identity_conflict' AND status = 'dismissed';
