{{ union_tenants('parts', [
    ('id', 'id', 'text'),
    ('reference', 'reference', 'text'),
    ('name', 'name', 'text'),
    ('type', 'type', 'text'),
    ('price', 'price', 'decimal(38,9)'),
    ('tax_rate', 'tax_rate', 'decimal(38,9)'),
    ('active', 'active', 'boolean'),
    ('date_modified', 'date_modified', 'timestamptz')
]) }}
