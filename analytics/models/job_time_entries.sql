{{ union_tenants('jobs', [
    ('id', 'id', 'text'),
    ('type', 'type', 'text'),
    ('technician_id', 'technician__id', 'text'),
    ('technician_name', 'technician__name', 'text'),
    ('started_at', 'start', 'timestamptz'),
    ('ended_at', 'end', 'timestamptz'),
    ('duration_minutes', 'duration_minutes', 'bigint')
], child='time_entries', parent_id='job_id') }}
