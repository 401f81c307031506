-- A job's review settings (colour, LUT with its SHA-256, burn-ins, start timecode) as
-- JSON, carried in every task; NULL for jobs made before they existed.
ALTER TABLE jobs ADD COLUMN review TEXT;
