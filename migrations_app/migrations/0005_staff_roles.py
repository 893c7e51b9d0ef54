"""Staff roles: the groups cutover-viewer, cutover-operator and cutover-admin with their permissions
(migrations_app.roles), and the custom permission behind the lifecycle actions."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from migrations_app.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):

    dependencies = [
        ("migrations_app", "0004_rollups_per_step"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("knox", "__latest__"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="migrationplan",
            options={"ordering": ["key"],
                     "permissions": [("operate_migrationplan", "Can operate migration plan (lifecycle actions)")]},
        ),
        # Groups are kept on reversal: they may have members by then.
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
