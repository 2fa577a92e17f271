{{ union_tenants('jobs', [
    ('reference', 'reference', 'text'),
    ('name', 'name', 'text'),
    ('quantity', 'quantity', 'decimal(38,9)'),
    ('unit_price', 'unit_price', 'decimal(38,9)')
], child='parts', parent_id='job_id') }}
