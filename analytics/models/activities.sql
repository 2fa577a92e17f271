select
  tenant, id, activity_type_id, activity_type_name, user_id, user_login, job_id, date_start, date_end,
  {{ minutes_between('date_start', 'date_end') }} as duration_minutes,
  note, date_modified
from (
{{ union_tenants('activities', [
    ('id', 'id', 'text'),
    ('activity_type_id', 'activity_type__id', 'text'),
    ('activity_type_name', 'activity_type__name', 'text'),
    ('user_id', 'user__id', 'text'),
    ('user_login', 'user__login', 'text'),
    ('job_id', 'job__id', 'text'),
    ('date_start', 'date_start', 'timestamptz'),
    ('date_end', 'date_end', 'timestamptz'),
    ('note', 'note', 'text'),
    ('date_modified', 'date_modified', 'timestamptz')
]) }}
) as activities
