{{ union_tenants('job_types', [
    ('id', 'id', 'text'),
    ('name', 'name', 'text'),
    ('duration_minutes', 'duration', 'bigint')
]) }}
