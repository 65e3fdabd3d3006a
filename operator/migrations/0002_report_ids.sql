-- Each report's own random id (DESIGN §12 says reports carry no device id; this is not one):
-- a report a device sent twice, because the broker's acknowledgement of the first was lost, is
-- stored once. Reports from agents that predate ids have none and are stored as they come.
ALTER TABLE reports ADD COLUMN report_id TEXT;

CREATE UNIQUE INDEX reports_report_id ON reports (report_id);
