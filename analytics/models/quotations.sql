{{ union_tenants('quotations', [
    ('id', 'id', 'text'),
    ('num', 'num', 'bigint'),
    ('my_id', 'my_id', 'text'),
    ('status', 'status', 'text'),
    ('customer_id', 'customer__id', 'text'),
    ('customer_name', 'customer__name', 'text'),
    ('site_id', 'site__id', 'text'),
    ('site_name', 'site__name', 'text'),
    ('currency', 'currency', 'text'),
    ('total_excl_tax', 'total_excl_tax', 'decimal(38,9)'),
    ('total_tax', 'total_tax', 'decimal(38,9)'),
    ('total_incl_tax', 'total_incl_tax', 'decimal(38,9)'),
    ('valid_until', 'valid_until', 'date'),
    ('date_created', 'date_created', 'timestamptz'),
    ('date_modified', 'date_modified', 'timestamptz')
]) }}
