{{ union_tenants('users', [
    ('id', 'id', 'text'),
    ('login', 'login', 'text'),
    ('first_name', 'first_name', 'text'),
    ('last_name', 'last_name', 'text'),
    ('email', 'email', 'text'),
    ('phone', 'phone', 'text'),
    ('profile', 'profile', 'text'),
    ('team_id', 'team__id', 'text'),
    ('team_name', 'team__name', 'text'),
    ('active', 'active', 'boolean'),
    ('date_created', 'date_created', 'timestamptz'),
    ('date_modified', 'date_modified', 'timestamptz')
]) }}
