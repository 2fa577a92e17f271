{{ union_tenants('customers', [
    ('id', 'id', 'text'),
    ('my_id', 'my_id', 'text'),
    ('name', 'name', 'text'),
    ('active', 'active', 'boolean'),
    ('address', 'address', 'text'),
    ('address_city', 'address_city', 'text'),
    ('address_zip', 'address_zip', 'text'),
    ('address_country', 'address_country', 'text'),
    ('contact_first_name', 'contact_first_name', 'text'),
    ('contact_last_name', 'contact_last_name', 'text'),
    ('contact_email', 'contact_email', 'text'),
    ('contact_phone', 'contact_phone', 'text'),
    ('contact_mobile', 'contact_mobile', 'text'),
    ('date_created', 'date_created', 'timestamptz'),
    ('date_modified', 'date_modified', 'timestamptz')
]) }}
