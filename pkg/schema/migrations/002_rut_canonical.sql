-- Rule R1 inside the database, so sources can be matched by canonical RUT with an
-- index instead of a scan: the same algorithm as pkg/rut (a test checks that both
-- agree). NULL when the value does not normalize.
CREATE OR REPLACE FUNCTION nomina_rut_canonical(raw text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS
$$
DECLARE
    s      text := translate(raw, E'. \t-', '');
    body   text;
    dv     text;
    total  integer := 0;
    weight integer := 2;
    d      integer;
    want   text;
BEGIN
    IF s !~ '^[0-9]+[0-9Kk]$' THEN
        RETURN NULL;
    END IF;
    body := ltrim(left(s, -1), '0');
    dv := upper(right(s, 1));
    IF body = '' OR length(body) > 9 THEN
        RETURN NULL;
    END IF;
    FOR i IN REVERSE length(body)..1 LOOP
        total := total + (ascii(substr(body, i, 1)) - 48) * weight;
        weight := CASE WHEN weight = 7 THEN 2 ELSE weight + 1 END;
    END LOOP;
    d := 11 - total % 11;
    want := CASE d WHEN 11 THEN '0' WHEN 10 THEN 'K' ELSE d::text END;
    IF dv <> want THEN
        RETURN NULL;
    END IF;
    RETURN body || '-' || dv;
END
$$;

-- The expression indexes that use it are built in 007_application_indexes.sql,
-- CONCURRENTLY and outside a transaction, since the tables are the application's.
