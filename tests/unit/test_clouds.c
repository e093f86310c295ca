/* test_clouds.c — clouds.yaml/secure.yaml reading and the CLI's credential gathering
 * (clouds.yaml, then OS_* variables, then --os-* options). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/cli/clouds.h"
#include "service/cli/osenv.h"

extern char **environ;

static char	 dir[256];

static void
write_file(const char *name, const char *text)
{
	char	 p[512];
	FILE	*f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_non_null(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
}

/* Removes every OS_* variable (and the ones the search honours), so the host's do not count. */
static void
clear_env(void)
{
	char	**e, name[128];
	size_t	  n;

again:
	for (e = environ; *e != NULL; e++) {
		n = strcspn(*e, "=");
		if (n < sizeof(name) && (strncmp(*e, "OS_", 3) == 0 ||
		    strncmp(*e, "ISOFORGE_API_URL=", n + 1) == 0 ||
		    strncmp(*e, "XDG_CONFIG_HOME=", n + 1) == 0)) {
			memcpy(name, *e, n);
			name[n] = '\0';
			unsetenv(name);
			goto again;
		}
	}
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/clouds.XXXXXX", getenv("TEST_TMP") != NULL ?
	    getenv("TEST_TMP") : "/tmp");
	assert_non_null(mkdtemp(dir));
	clear_env();
	return 0;
}

static int
teardown(void **state)
{
	struct err	 e;

	(void)state;
	clear_env();
	err_clear(&e);
	util_rmtree(dir, &e);
	return 0;
}

static const char *
jget(const json_t *o, const char *path)
{
	char		 buf[256], *p, *save = NULL;
	const json_t	*v = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = strtok_r(buf, ".", &save); p != NULL; p = strtok_r(NULL, ".", &save))
		v = json_object_get(v, p);
	return json_string_value(v);
}

static void
test_yaml_parse(void **state)
{
	const char	*y =
	    "# comment\n"
	    "defaults: &def\n"
	    "  region_name: RegionOne\n"
	    "  interface: internal\n"
	    "clouds:\n"
	    "  alpha:\n"
	    "    <<: *def\n"
	    "    interface: public\n"
	    "    auth:\n"
	    "      auth_url: 'http://k:5000/v3'\n"
	    "      username: \"alice\"\n"
	    "      password: p@ss#w:rd\n"
	    "    verify: false\n"
	    "    identity_api_version: 3\n"
	    "    nothing: ~\n"
	    "    empty:\n"
	    "    quoted: 'null'\n"
	    "    regions: [one, two]\n";
	struct err	 e;
	json_t		*j, *a;

	(void)state;
	err_clear(&e);
	assert_non_null(j = clouds_yaml_parse(y, strlen(y), "t", &e));
	a = json_object_get(json_object_get(j, "clouds"), "alpha");
	assert_string_equal(jget(a, "auth.auth_url"), "http://k:5000/v3");
	assert_string_equal(jget(a, "auth.username"), "alice");
	assert_string_equal(jget(a, "auth.password"), "p@ss#w:rd");
	/* merge key: the mapping's own key wins, the others come in */
	assert_string_equal(jget(a, "interface"), "public");
	assert_string_equal(jget(a, "region_name"), "RegionOne");
	assert_string_equal(jget(a, "verify"), "false");
	assert_string_equal(jget(a, "identity_api_version"), "3");
	assert_true(json_is_null(json_object_get(a, "nothing")));
	assert_true(json_is_null(json_object_get(a, "empty")));
	assert_string_equal(jget(a, "quoted"), "null");
	assert_null(json_object_get(a, "<<"));
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "regions"), 1)),
	    "two");
	json_decref(j);

	/* an empty document is an empty mapping */
	assert_non_null(j = clouds_yaml_parse("", 0, "t", &e));
	assert_true(json_is_object(j) && json_object_size(j) == 0);
	json_decref(j);
}

static void
test_yaml_errors(void **state)
{
	const char	*bad = "clouds:\n  a:\n    auth: {x: 1\n  b: 2\n";
	const char	*cplx = "? [a, b]\n: c\n";
	const char	*cycle = "a: &x [*x]\n";
	struct buf	 deep;
	struct err	 e;
	int		 i;

	(void)state;
	err_clear(&e);
	assert_null(clouds_yaml_parse(bad, strlen(bad), "bad.yaml", &e));
	assert_int_equal(e.kind, ERR_INVAL);
	assert_non_null(strstr(e.msg, "bad.yaml: line "));
	err_clear(&e);
	assert_null(clouds_yaml_parse(cplx, strlen(cplx), "t", &e));
	assert_non_null(strstr(e.msg, "not a scalar"));
	/* an alias of its own ancestor would recurse for ever: the depth bound stops it */
	err_clear(&e);
	if (clouds_yaml_parse(cycle, strlen(cycle), "t", &e) == NULL)
		assert_int_equal(e.kind, ERR_INVAL);
	buf_init(&deep);
	for (i = 0; i < CLOUDS_MAX_DEPTH + 5; i++)
		buf_puts(&deep, "[");
	for (i = 0; i < CLOUDS_MAX_DEPTH + 5; i++)
		buf_puts(&deep, "]");
	err_clear(&e);
	assert_null(clouds_yaml_parse(deep.data, deep.len, "t", &e));
	assert_non_null(strstr(e.msg, "deeper"));
	buf_free(&deep);
}

static const char *clouds_yaml =
    "clouds:\n"
    "  devstack:\n"
    "    auth:\n"
    "      auth_url: http://k:5000\n"
    "      username: alice\n"
    "      project_name: alpha\n"
    "      user_domain_name: Users\n"
    "      project_domain_id: default\n"
    "    region_name: RegionTwo\n"
    "    interface: internalURL\n"
    "    verify: false\n"
    "  appcred:\n"
    "    auth_type: v3applicationcredential\n"
    "    auth:\n"
    "      auth_url: https://k/identity/v3/\n"
    "      application_credential_id: ac1\n"
    "      application_credential_secret: s3cr3t\n"
    "    regions:\n"
    "      - name: North\n"
    "    cacert: /etc/ca.pem\n"
    "    image_build_endpoint_override: http://api:9999\n"
    "  odd:\n"
    "    auth_type: v3oidcpassword\n"
    "    auth: {auth_url: http://k/v3, username: u, password: p}\n";

static const char *secure_yaml =
    "clouds:\n"
    "  devstack:\n"
    "    auth:\n"
    "      password: from-secure\n";

static void
test_cloud_merge_and_search(void **state)
{
	struct err	 e;
	char		 p[512], cwd[512], *path = NULL;
	json_t		*c;

	(void)state;
	err_clear(&e);
	write_file("clouds.yaml", clouds_yaml);
	write_file("secure.yaml", secure_yaml);
	/* no file anywhere we look: the XDG dir is empty, cwd has none, and /etc is not ours */
	setenv("XDG_CONFIG_HOME", dir, 1);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	/* ./clouds.yaml is found first */
	assert_int_equal(chdir(dir), 0);
	assert_non_null(path = clouds_find_file("clouds"));
	assert_string_equal(path, "./clouds.yaml");
	free(path);
	assert_non_null(c = clouds_cloud("devstack", &path, &e));
	assert_string_equal(path, "./clouds.yaml");
	free(path);
	/* secure.yaml merged over clouds.yaml, deep: the rest of auth stays */
	assert_string_equal(jget(c, "auth.password"), "from-secure");
	assert_string_equal(jget(c, "auth.username"), "alice");
	json_decref(c);
	assert_null(clouds_cloud("nowhere", NULL, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "nowhere"));
	assert_int_equal(chdir(cwd), 0);

	/* $XDG_CONFIG_HOME/openstack/clouds.yml */
	snprintf(p, sizeof(p), "%s/openstack", dir);
	assert_int_equal(util_mkdirs(p, &e), 0);
	write_file("openstack/clouds.yml", "clouds: {x: {auth: {auth_url: http://x/v3}}}\n");
	if (access("./clouds.yaml", F_OK) != 0 && access("./clouds.yml", F_OK) != 0) {
		assert_non_null(path = clouds_find_file("clouds"));
		assert_non_null(strstr(path, "/openstack/clouds.yml"));
		free(path);
	}
	/* OS_CLIENT_CONFIG_FILE names the file; a missing one is none */
	snprintf(p, sizeof(p), "%s/clouds.yaml", dir);
	setenv("OS_CLIENT_CONFIG_FILE", p, 1);
	assert_non_null(path = clouds_find_file("clouds"));
	assert_string_equal(path, p);
	free(path);
	setenv("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml", 1);
	assert_null(clouds_find_file("clouds"));
	err_clear(&e);
	assert_null(clouds_cloud("devstack", NULL, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	/* a broken secure.yaml is an error, not silently skipped */
	setenv("OS_CLIENT_CONFIG_FILE", p, 1);
	write_file("bad-secure.yaml", "clouds: [\n");
	snprintf(p, sizeof(p), "%s/bad-secure.yaml", dir);
	setenv("OS_CLIENT_SECURE_FILE", p, 1);
	err_clear(&e);
	assert_null(clouds_cloud("devstack", NULL, &e));
	assert_int_equal(e.kind, ERR_INVAL);
}

static void
use_files(void)
{
	char	 p[512];

	write_file("clouds.yaml", clouds_yaml);
	write_file("secure.yaml", secure_yaml);
	snprintf(p, sizeof(p), "%s/clouds.yaml", dir);
	setenv("OS_CLIENT_CONFIG_FILE", p, 1);
	snprintf(p, sizeof(p), "%s/secure.yaml", dir);
	setenv("OS_CLIENT_SECURE_FILE", p, 1);
}

static void
test_config_cloud(void **state)
{
	struct osenv_flags	 f;
	struct osenv_config	 c;
	struct err		 e;

	(void)state;
	use_files();
	memset(&f, 0, sizeof(f));
	err_clear(&e);
	setenv("OS_CLOUD", "devstack", 1);
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_string_equal(c.cloud, "devstack");
	assert_string_equal(c.auth.auth_url, "http://k:5000/v3");	/* /v3 added */
	assert_string_equal(c.auth.username, "alice");
	assert_string_equal(c.auth.password, "from-secure");
	assert_string_equal(c.auth.project_name, "alpha");
	assert_string_equal(c.auth.user_domain_name, "Users");
	assert_string_equal(c.auth.project_domain_id, "default");
	assert_string_equal(c.auth.region, "RegionTwo");
	assert_string_equal(c.auth.interface, "internal");	/* internalURL */
	assert_int_equal(c.http.insecure, 1);			/* verify: false */
	assert_null(c.endpoint);
	osenv_config_free(&c);

	/* OS_* override clouds.yaml, and --os-* override both */
	setenv("OS_PASSWORD", "from-env", 1);
	setenv("OS_REGION_NAME", "RegionEnv", 1);
	setenv("OS_TENANT_NAME", "tenant", 1);
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_string_equal(c.auth.password, "from-env");
	assert_string_equal(c.auth.region, "RegionEnv");
	assert_string_equal(c.auth.project_name, "tenant");
	osenv_config_free(&c);
	assert_int_equal(osenv_flag(&f, OSENV_OPT + OSK_PASSWORD, "from-flag"), 1);
	assert_int_equal(osenv_flag(&f, OSENV_OPT + OSK_PROJECT_NAME, "flagged"), 1);
	assert_int_equal(osenv_flag(&f, OSENV_OPT + OSK_ENDPOINT, "http://dev:1/"), 1);
	assert_int_equal(osenv_flag(&f, 'j', NULL), 0);
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_string_equal(c.auth.password, "from-flag");
	assert_string_equal(c.auth.project_name, "flagged");
	assert_string_equal(c.endpoint, "http://dev:1/");
	osenv_config_free(&c);

	/* --os-cloud wins over OS_CLOUD: an application credential, cacert, the endpoint */
	unsetenv("OS_PASSWORD");
	unsetenv("OS_REGION_NAME");
	unsetenv("OS_TENANT_NAME");
	memset(&f, 0, sizeof(f));
	osenv_flag(&f, OSENV_OPT + OSK_CLOUD, "appcred");
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_string_equal(c.auth.auth_url, "https://k/identity/v3");
	assert_string_equal(c.auth.app_cred_id, "ac1");
	assert_string_equal(c.auth.app_cred_secret, "s3cr3t");
	assert_null(c.auth.password);
	assert_string_equal(c.auth.region, "North");		/* first of regions: */
	assert_string_equal(c.http.ca_file, "/etc/ca.pem");
	assert_int_equal(c.http.insecure, 0);
	assert_string_equal(c.endpoint, "http://api:9999");
	osenv_config_free(&c);
	/* ISOFORGE_API_URL beats the cloud's override */
	setenv("ISOFORGE_API_URL", "http://127.0.0.1:1", 1);
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_string_equal(c.endpoint, "http://127.0.0.1:1");
	osenv_config_free(&c);

	/* what cannot work is refused with the reason */
	osenv_flag(&f, OSENV_OPT + OSK_CLOUD, "odd");
	err_clear(&e);
	assert_int_equal(osenv_config_load(&f, &c, &e), -1);
	assert_non_null(strstr(e.msg, "v3oidcpassword"));
	osenv_config_free(&c);
	osenv_flag(&f, OSENV_OPT + OSK_CLOUD, "missing");
	err_clear(&e);
	assert_int_equal(osenv_config_load(&f, &c, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	osenv_config_free(&c);
}

static void
test_config_env(void **state)
{
	struct osenv_flags	 f;
	struct osenv_config	 c;
	struct err		 e;

	(void)state;
	memset(&f, 0, sizeof(f));
	err_clear(&e);
	/* nothing at all */
	assert_int_equal(osenv_config_load(&f, &c, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	assert_non_null(strstr(e.msg, "auth URL"));
	osenv_config_free(&c);
	/* an openrc: OS_* only, no clouds.yaml needed */
	setenv("OS_AUTH_URL", "http://k:5000/v3/", 1);
	setenv("OS_USERNAME", "bob", 1);
	setenv("OS_PROJECT_NAME", "beta", 1);
	setenv("OS_DOMAIN_NAME", "Dom", 1);
	setenv("OS_INSECURE", "yes", 1);
	err_clear(&e);
	assert_int_equal(osenv_config_load(&f, &c, &e), -1);	/* no password */
	assert_non_null(strstr(e.msg, "credentials"));
	osenv_config_free(&c);
	setenv("OS_PASSWORD", "pw", 1);
	err_clear(&e);
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_null(c.cloud);
	assert_string_equal(c.auth.auth_url, "http://k:5000/v3");
	assert_string_equal(c.auth.user_domain_name, "Dom");
	assert_string_equal(c.auth.project_domain_name, "Dom");
	assert_null(c.auth.interface);
	assert_int_equal(c.http.insecure, 1);
	osenv_config_free(&c);
	/* default_domain stands in for a domain not given */
	unsetenv("OS_DOMAIN_NAME");
	osenv_flag(&f, OSENV_OPT + OSK_DEFAULT_DOMAIN, "d0");
	osenv_flag(&f, OSENV_OPT + OSK_USER_DOMAIN_NAME, "U");
	osenv_flag(&f, OSENV_OPT + OSK_INTERFACE, "admin");
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_string_equal(c.auth.user_domain_name, "U");
	assert_null(c.auth.user_domain_id);
	assert_string_equal(c.auth.project_domain_id, "d0");
	assert_string_equal(c.auth.interface, "admin");
	osenv_config_free(&c);
	osenv_flag(&f, OSENV_OPT + OSK_INTERFACE, "sideways");
	err_clear(&e);
	assert_int_equal(osenv_config_load(&f, &c, &e), -1);
	assert_non_null(strstr(e.msg, "sideways"));
	osenv_config_free(&c);
	/* an empty OS_CLOUD is no cloud */
	setenv("OS_CLOUD", "", 1);
	memset(&f, 0, sizeof(f));
	assert_int_equal(osenv_config_load(&f, &c, &e), 0);
	assert_null(c.cloud);
	osenv_config_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml_parse),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test_setup_teardown(test_cloud_merge_and_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_cloud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_env, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
