{{ union_tenants('equipment', [
    ('id', 'id', 'text'),
    ('my_id', 'my_id', 'text'),
    ('name', 'name', 'text'),
    ('serial_number', 'serial_number', 'text'),
    ('customer_id', 'customer__id', 'text'),
    ('customer_name', 'customer__name', 'text'),
    ('site_id', 'site__id', 'text'),
    ('site_name', 'site__name', 'text'),
    ('date_created', 'date_created', 'timestamptz'),
    ('date_modified', 'date_modified', 'timestamptz')
]) }}
