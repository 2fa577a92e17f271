{{ union_tenants('quotations', [
    ('part_product_code', 'part_product_code', 'text'),
    ('description', 'description', 'text'),
    ('quantity', 'quantity', 'decimal(38,9)'),
    ('unit_price', 'unit_price', 'decimal(38,9)'),
    ('tax_rate', 'tax_rate', 'decimal(38,9)'),
    ('total', 'total', 'decimal(38,9)')
], child='lines', parent_id='quotation_id') }}
