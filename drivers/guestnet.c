/* guestnet.c — the guest network policy: parsers and builders (pure), then the few functions
 * that make libvirt's network and run nft(8) (argv children, never a shell). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "base/log.h"
#include "base/proc.h"
#include "drivers/guestnet.h"

#define GUESTNET_DNSMASQ_NS	"http://libvirt.org/schemas/network/dnsmasq/1.0"
/* GUESTNET_SUBNET_POOL as numbers: 10.122.N.0/24 */
#define GUESTNET_POOL_A		10
#define GUESTNET_POOL_B		122
#define GUESTNET_TRIES		4

/* 1 when s is a name we accept for a network or bridge: [A-Za-z0-9._-]{1,max}. */
static int
guestnet_name_ok(const char *s, size_t max)
{
	size_t	 i;

	if (s == NULL || *s == '\0' || strlen(s) > max)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			return 0;
	return 1;
}

/* Parses a guest_network value; see guestnet.h. */
int
guestnet_parse(const char *value, struct guestnet_policy *p, struct err *e)
{
	const char	*name = NULL;
	size_t		 max = 255;

	memset(p, 0, sizeof(*p));
	if (value == NULL || *value == '\0' || strcmp(value, "isolated") == 0) {
		p->mode = GUESTNET_ISOLATED;
		return 0;
	}
	if (strcmp(value, "none") == 0) {
		p->mode = GUESTNET_NONE;
		return 0;
	}
	if (strncmp(value, "network:", 8) == 0) {
		p->mode = GUESTNET_NETWORK;
		name = value + 8;
	} else if (strncmp(value, "bridge:", 7) == 0) {
		p->mode = GUESTNET_BRIDGE;
		name = value + 7;
		max = 15;	/* IFNAMSIZ - 1 */
	} else {
		err_set(e, ERR_INVAL, "'%s': not one of isolated, none, network:NAME, "
		    "bridge:NAME", value);
		return -1;
	}
	if (!guestnet_name_ok(name, max)) {
		err_set(e, ERR_INVAL, "'%s': the name must be 1 to %zu letters, digits, "
		    "'.', '_' or '-'", value, max);
		return -1;
	}
	snprintf(p->name, sizeof(p->name), "%s", name);
	return 0;
}

/* Parses one "ADDR[/PREFIX]" into c; errors name the item. */
static int
guestnet_parse_cidr(const char *item, struct guestnet_cidr *c, struct err *e)
{
	char		 addr[64], *end;
	const char	*slash = strchr(item, '/');
	size_t		 alen = slash != NULL ? (size_t)(slash - item) : strlen(item);
	unsigned long	 prefix;
	unsigned	 max, i, bits;

	memset(c, 0, sizeof(*c));
	if (alen == 0 || alen >= sizeof(addr)) {
		err_set(e, ERR_INVAL, "'%s' is not an address or CIDR range", item);
		return -1;
	}
	memcpy(addr, item, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		err_set(e, ERR_INVAL, "'%s' is not an IPv4 or IPv6 address or range",
		    item);
		return -1;
	}
	prefix = max;
	if (slash != NULL) {
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno != 0 || prefix > max) {
			err_set(e, ERR_INVAL, "'%s': the prefix length must be 0 to %u",
			    item, max);
			return -1;
		}
	}
	c->prefix = (unsigned)prefix;
	for (i = 0; i < max / 8; i++) {
		bits = i * 8 >= c->prefix ? 0 : c->prefix - i * 8 >= 8 ? 8 : c->prefix - i * 8;
		if ((c->addr[i] & (unsigned char)(0xff >> bits)) != 0) {
			err_set(e, ERR_INVAL, "'%s' has bits set past its /%u (the "
			    "network address is meant)", item, c->prefix);
			return -1;
		}
	}
	return 0;
}

/* Parses a guest_deny value; see guestnet.h. */
int
guestnet_parse_deny(const char *value, struct guestnet_cidr **out, size_t *n, struct err *e)
{
	struct guestnet_cidr	*v = NULL;
	size_t			 nv = 0, len;
	const char		*p;
	char			*item;

	*out = NULL;
	*n = 0;
	if (value == NULL)
		value = GUESTNET_DEFAULT_DENY;
	p = value + strspn(value, ", \t");
	if (strcmp(p, "none") == 0)
		return 0;
	if (*p == '\0') {
		err_set(e, ERR_INVAL, "empty (write none to deny no range)");
		return -1;
	}
	while (*p != '\0') {
		len = strcspn(p, ", \t");
		item = xstrndup(p, len);
		v = xrealloc(v, (nv + 1) * sizeof(*v));
		if (guestnet_parse_cidr(item, &v[nv], e) == -1) {
			free(item);
			free(v);
			return -1;
		}
		free(item);
		nv++;
		p += len;
		p += strspn(p, ", \t");
	}
	*out = v;
	*n = nv;
	return 0;
}

void
guestnet_cidr_format(const struct guestnet_cidr *c, char *buf, size_t len)
{
	char	 a[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family, c->addr, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, c->prefix);
}

/* Parses policy and, when ranges is not NULL and the policy is isolated, deny (*ranges:
 * caller frees); errors start with "guest network:". */
static int
guestnet_parse_both(const char *policy, struct guestnet_policy *p, const char *deny,
    struct guestnet_cidr **ranges, size_t *nranges, struct err *e)
{
	struct err	 why;

	err_clear(&why);
	if (guestnet_parse(policy, p, &why) == -1) {
		err_set(e, ERR_INVAL, "guest network: %s", why.msg);
		return -1;
	}
	if (ranges != NULL && p->mode == GUESTNET_ISOLATED &&
	    guestnet_parse_deny(deny, ranges, nranges, &why) == -1) {
		err_set(e, ERR_INVAL, "guest network: denied ranges: %s", why.msg);
		return -1;
	}
	return 0;
}

/* Resolves a guest_network value to isoboot's NIC; see guestnet.h. */
int
guestnet_isoboot(const char *value, struct guestnet_policy *p, struct isoboot_params *params,
    struct err *e)
{
	if (guestnet_parse_both(value, p, NULL, NULL, NULL, e) == -1)
		return -1;
	params->network = NULL;
	params->bridge = NULL;
	switch (p->mode) {
	case GUESTNET_ISOLATED:
		params->network = GUESTNET_LIBVIRT_NET;
		break;
	case GUESTNET_NETWORK:
		params->network = p->name;
		break;
	case GUESTNET_BRIDGE:
		params->bridge = p->name;
		break;
	case GUESTNET_NONE:
		break;
	}
	return 0;
}

/* The isolated network's XML; see guestnet.h. */
char *
guestnet_network_xml(unsigned subnet)
{
	xmlDoc		*doc;
	xmlNode		*net, *n, *ip, *dhcp, *opts;
	xmlNs		*ns;
	xmlBuffer	*out;
	char		 gw[32], lo[32], hi[32], br[32], *xml;

	snprintf(gw, sizeof(gw), "%d.%d.%u.1", GUESTNET_POOL_A, GUESTNET_POOL_B, subnet & 255);
	snprintf(lo, sizeof(lo), "%d.%d.%u.2", GUESTNET_POOL_A, GUESTNET_POOL_B, subnet & 255);
	snprintf(hi, sizeof(hi), "%d.%d.%u.254", GUESTNET_POOL_A, GUESTNET_POOL_B, subnet & 255);
	doc = xmlNewDoc(BAD_CAST "1.0");
	net = xmlNewDocNode(doc, NULL, BAD_CAST "network", NULL);
	xmlDocSetRootElement(doc, net);
	ns = xmlNewNs(net, BAD_CAST GUESTNET_DNSMASQ_NS, BAD_CAST "dnsmasq");
	xmlNewTextChild(net, NULL, BAD_CAST "name", BAD_CAST GUESTNET_LIBVIRT_NET);
	n = xmlNewChild(net, NULL, BAD_CAST "forward", NULL);
	xmlSetProp(n, BAD_CAST "mode", BAD_CAST "nat");
	n = xmlNewChild(net, NULL, BAD_CAST "bridge", NULL);
	snprintf(br, sizeof(br), GUESTNET_BRIDGE_PREFIX "%u", subnet & 255);
	xmlSetProp(n, BAD_CAST "name", BAD_CAST br);
	xmlSetProp(n, BAD_CAST "stp", BAD_CAST "off");
	xmlSetProp(n, BAD_CAST "delay", BAD_CAST "0");
	/* no build VM reaches another one on the bridge */
	n = xmlNewChild(net, NULL, BAD_CAST "port", NULL);
	xmlSetProp(n, BAD_CAST "isolated", BAD_CAST "yes");
	ip = xmlNewChild(net, NULL, BAD_CAST "ip", NULL);
	xmlSetProp(ip, BAD_CAST "address", BAD_CAST gw);
	xmlSetProp(ip, BAD_CAST "netmask", BAD_CAST "255.255.255.0");
	dhcp = xmlNewChild(ip, NULL, BAD_CAST "dhcp", NULL);
	n = xmlNewChild(dhcp, NULL, BAD_CAST "range", NULL);
	xmlSetProp(n, BAD_CAST "start", BAD_CAST lo);
	xmlSetProp(n, BAD_CAST "end", BAD_CAST hi);
	/* dnsmasq owns the range: its ping before each offer only delays DHCP by ~3 s */
	opts = xmlNewChild(net, ns, BAD_CAST "options", NULL);
	n = xmlNewChild(opts, ns, BAD_CAST "option", NULL);
	xmlSetProp(n, BAD_CAST "value", BAD_CAST "no-ping");

	out = xmlBufferCreate();
	xmlNodeDump(out, doc, net, 0, 1);
	xml = xasprintf("%s\n", (const char *)xmlBufferContent(out));
	xmlBufferFree(out);
	xmlFreeDoc(doc);
	return xml;
}

/* Appends one nft set of the ranges of family. */
static void
guestnet_nft_set(struct buf *b, const char *name, int family,
    const struct guestnet_cidr *deny, size_t ndeny)
{
	char	 s[64];
	size_t	 i;
	int	 first = 1;

	buf_printf(b, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n\t\tauto-merge\n", name,
	    family == AF_INET ? "ipv4_addr" : "ipv6_addr");
	for (i = 0; i < ndeny; i++) {
		if (deny[i].family != family)
			continue;
		guestnet_cidr_format(&deny[i], s, sizeof(s));
		buf_printf(b, "%s%s", first ? "\t\telements = { " : ", ", s);
		first = 0;
	}
	if (!first)
		buf_puts(b, " }\n");
	buf_puts(b, "\t}\n");
}

/* The nftables script of a bridge; see guestnet.h. */
char *
guestnet_nft_script(const char *bridge, const char *gateway, const struct guestnet_cidr *deny,
    size_t ndeny)
{
	struct buf	 b;
	unsigned char	 a[4];
	size_t		 i;

	/* the bridge name becomes the table's: an nft identifier */
	if (!guestnet_name_ok(bridge, 15) || !isalpha((unsigned char)bridge[0]) ||
	    gateway == NULL || inet_pton(AF_INET, gateway, a) != 1)
		return NULL;
	for (i = 0; bridge[i] != '\0'; i++)
		if (!isalnum((unsigned char)bridge[i]) && bridge[i] != '_')
			return NULL;
	buf_init(&b);
	buf_printf(&b,
	    "# isoforge: the guest network policy of bridge %s (libvirt network %s)\n"
	    "table inet %s\n"
	    "delete table inet %s\n"
	    "table inet %s {\n", bridge, GUESTNET_LIBVIRT_NET, bridge, bridge, bridge);
	guestnet_nft_set(&b, "deny4", AF_INET, deny, ndeny);
	guestnet_nft_set(&b, "deny6", AF_INET6, deny, ndeny);
	buf_printf(&b,
	    "\t# to the builder host itself: DHCP, and DNS to the gateway (dnsmasq), nothing else;\n"
	    "\t# answers to what the host opened (isoforge's SSH to a guest it customizes)\n"
	    "\tchain input {\n"
	    "\t\ttype filter hook input priority filter - 10; policy accept;\n"
	    "\t\tiifname != \"%s\" accept\n"
	    "\t\tct state established,related accept\n"
	    "\t\tip daddr %s udp dport 53 accept\n"
	    "\t\tip daddr %s tcp dport 53 accept\n"
	    "\t\tudp sport 68 udp dport 67 accept\n"
	    "\t\tjump refuse\n"
	    "\t}\n"
	    "\t# through the builder host: not to a denied range, not to another build VM\n"
	    "\tchain forward {\n"
	    "\t\ttype filter hook forward priority filter - 10; policy accept;\n"
	    "\t\tiifname != \"%s\" accept\n"
	    "\t\toifname \"" GUESTNET_BRIDGE_PREFIX "*\" jump refuse\n"
	    "\t\tip daddr @deny4 jump refuse\n"
	    "\t\tip6 daddr @deny6 jump refuse\n"
	    "\t}\n"
	    "\t# refused, not dropped: an installer fails at once with a clear error\n"
	    "\tchain refuse {\n"
	    "\t\tmeta l4proto tcp reject with tcp reset\n"
	    "\t\treject with icmpx admin-prohibited\n"
	    "\t}\n"
	    "}\n", bridge, gateway, gateway, bridge);
	return buf_release(&b);
}

/* nft's path: root's PATH has /usr/sbin, a service's may not. */
static const char *
guestnet_nft_bin(void)
{
	if (access("/usr/sbin/nft", X_OK) == 0)
		return "/usr/sbin/nft";
	if (access("/sbin/nft", X_OK) == 0)
		return "/sbin/nft";
	return "nft";
}

/* Runs nft -f on script (through a 0600 temporary file: the child's stdin is /dev/null). */
static int
guestnet_nft_run(const char *script, struct err *e)
{
	char		 path[] = "/tmp/isoforge-nft.XXXXXX";
	char		*argv[] = { (char *)guestnet_nft_bin(), "-f", path, NULL };
	struct err	 why;
	size_t		 len = strlen(script);
	ssize_t		 w;
	int		 fd, rc;

	if ((fd = mkstemp(path)) == -1) {
		err_set(e, ERR_IO, "guest network: a temporary file: %s", strerror(errno));
		return -1;
	}
	w = write(fd, script, len);
	if (close(fd) == -1 || w != (ssize_t)len) {
		err_set(e, ERR_IO, "guest network: writing %s failed", path);
		(void)unlink(path);
		return -1;
	}
	err_clear(&why);
	rc = proc_run(argv, 20, NULL, &why);
	(void)unlink(path);
	if (rc == -1)
		err_set(e, why.kind == ERR_NOTFOUND ? ERR_NOTFOUND : ERR_IO, "guest network: "
		    "installing the nftables rules: %s%s", why.msg, why.kind == ERR_NOTFOUND ?
		    " (apt-get install nftables)" : geteuid() != 0 ? " (needs root)" : "");
	return rc;
}

/* 1 when 10.122.subnet.0/24 overlaps no IPv4 route of the host (but the default). */
static int
guestnet_subnet_free(const char *routes, unsigned subnet)
{
	unsigned long	 dst, mask;
	uint32_t	 cand, cmask = 0xffffff00u, d, m;
	const char	*line, *next;
	char		 ifname[32];

	cand = (uint32_t)GUESTNET_POOL_A << 24 | (uint32_t)GUESTNET_POOL_B << 16 | subnet << 8;
	for (line = routes; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			next++;
		/* Iface Destination Gateway Flags RefCnt Use Metric Mask ...: hex, network order */
		if (sscanf(line, "%31s %lx %*x %*x %*d %*d %*d %lx", ifname, &dst, &mask) != 3)
			continue;
		d = ntohl((uint32_t)dst);
		m = ntohl((uint32_t)mask);
		if (m != 0 && ((cand ^ d) & (cmask & m)) == 0)
			return 0;
	}
	return 1;
}

/* The first index N >= from whose subnet no host route overlaps and whose bridge
 * (GUESTNET_BRIDGE_PREFIX N) does not exist, or -1. */
static int
guestnet_pick_subnet(unsigned from)
{
	char		*routes, path[64];
	unsigned	 i;
	int		 found = -1;

	routes = util_read_file("/proc/net/route", 1 << 20, NULL, NULL);
	for (i = from; i < 256 && found < 0; i++) {
		snprintf(path, sizeof(path), "/sys/class/net/" GUESTNET_BRIDGE_PREFIX "%u", i);
		if ((routes == NULL || guestnet_subnet_free(routes, i)) && access(path, F_OK) == -1)
			found = (int)i;
	}
	free(routes);
	return found;
}

/* The bridge and IPv4 gateway of a network's live XML (callers free); -1 when missing. */
static int
guestnet_live(const char *xml, char **bridge, char **gateway, struct err *e)
{
	xmlDoc			*doc;
	xmlXPathContext		*ctx = NULL;
	xmlXPathObject		*o;
	static const char *const exprs[2] = {
		"string(/network/bridge/@name)",
		"string(/network/ip[not(@family) or @family='ipv4'][1]/@address)" };
	char			*got[2] = { NULL, NULL };
	int			 i;

	*bridge = *gateway = NULL;
	doc = xmlReadMemory(xml, (int)strlen(xml), "network.xml", NULL, XML_PARSE_NONET);
	if (doc != NULL && (ctx = xmlXPathNewContext(doc)) != NULL)
		for (i = 0; i < 2; i++) {
			o = xmlXPathEvalExpression(BAD_CAST exprs[i], ctx);
			if (o != NULL && o->type == XPATH_STRING && o->stringval != NULL &&
			    o->stringval[0] != '\0')
				got[i] = xstrdup((const char *)o->stringval);
			xmlXPathFreeObject(o);
		}
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	if (got[0] == NULL || got[1] == NULL) {
		err_set(e, ERR_INVAL, "guest network: libvirt network %s has no bridge or no IPv4 "
		    "address", GUESTNET_LIBVIRT_NET);
		free(got[0]);
		free(got[1]);
		return -1;
	}
	*bridge = got[0];
	*gateway = got[1];
	return 0;
}

/* Makes GUESTNET_LIBVIRT_NET exist and run; its bridge and gateway (caller frees). */
static int
guestnet_network_up(struct virt *v, char **bridge, char **gateway, struct err *e)
{
	enum virt_net_state	 st;
	struct err		 why;
	char			*xml = NULL;
	unsigned		 from = 0;
	int			 try, subnet, rc;

	err_clear(&why);
	/* the last round only looks: a network made in the one before is found running */
	for (try = 0; try <= GUESTNET_TRIES; try++) {
		if (virt_network_state(v, GUESTNET_LIBVIRT_NET, &st, &xml, e) == -1)
			return -1;
		if (st == VIRT_NET_ACTIVE) {
			rc = guestnet_live(xml, bridge, gateway, e);
			free(xml);
			return rc;
		}
		if (try == GUESTNET_TRIES)
			break;
		err_clear(&why);
		if (st == VIRT_NET_INACTIVE) {
			/* autostart missed it (a subnet taken meanwhile?): start, else make anew */
			if (virt_network_start(v, GUESTNET_LIBVIRT_NET, &why) == 0)
				continue;
			log_warnx("guest network %s: %s; defining it anew", GUESTNET_LIBVIRT_NET,
			    why.msg);
			if (virt_network_remove(v, GUESTNET_LIBVIRT_NET, e) == -1)
				return -1;
			continue;
		}
		if ((subnet = guestnet_pick_subnet(from)) < 0) {
			err_set(e, ERR_CONFLICT, "guest network: every /24 of %s is in use on this "
			    "host", GUESTNET_SUBNET_POOL);
			return -1;
		}
		from = (unsigned)subnet + 1;
		xml = guestnet_network_xml((unsigned)subnet);
		rc = virt_network_create(v, xml, &why);
		free(xml);
		xml = NULL;
		if (rc == 0)
			log_info("guest network: defined libvirt network %s on %d.%d.%d.0/24",
			    GUESTNET_LIBVIRT_NET, GUESTNET_POOL_A, GUESTNET_POOL_B, subnet);
		/* else: someone defined it at the same time, or took the subnet: look again */
	}
	err_set(e, why.kind != ERR_NONE ? why.kind : ERR_IO, "guest network: libvirt network %s "
	    "does not start: %s%s", GUESTNET_LIBVIRT_NET, why.msg[0] != '\0' ? why.msg : "gave up",
	    strstr(why.msg, "dnsmasq") != NULL ?
	    " (apt-get install dnsmasq-base; libvirtd looks for it in its PATH)" : "");
	return -1;
}

/* Before a build VM is defined; see guestnet.h. */
int
guestnet_prepare(struct virt *v, const char *policy, const char *deny, struct err *e)
{
	struct guestnet_policy	 p;
	struct guestnet_cidr	*ranges = NULL;
	size_t			 nranges = 0;
	char			*bridge = NULL, *gateway = NULL, *script = NULL;
	int			 rc = -1;

	if (guestnet_parse_both(policy, &p, deny, &ranges, &nranges, e) == -1)
		return -1;
	if (p.mode != GUESTNET_ISOLATED)
		return 0;
	if (guestnet_network_up(v, &bridge, &gateway, e) == -1)
		goto cleanup;
	if ((script = guestnet_nft_script(bridge, gateway, ranges, nranges)) == NULL) {
		err_set(e, ERR_INVAL, "guest network: libvirt network %s: bridge '%s' or gateway "
		    "'%s' unusable", GUESTNET_LIBVIRT_NET, bridge, gateway);
		goto cleanup;
	}
	if (guestnet_nft_run(script, e) == -1)
		goto cleanup;
	log_debug("guest network: %s on bridge %s (gateway %s), %zu denied ranges",
	    GUESTNET_LIBVIRT_NET, bridge, gateway, nranges);
	rc = 0;
cleanup:
	free(ranges);
	free(bridge);
	free(gateway);
	free(script);
	return rc;
}

/* For a private libvirtd about to stop; see guestnet.h. */
int
guestnet_teardown(struct virt *v, struct err *e)
{
	enum virt_net_state	 st;
	char			*xml = NULL, *bridge = NULL, *gateway = NULL;
	char			*argv[] = { (char *)guestnet_nft_bin(), "delete", "table", "inet",
				    NULL, NULL };
	struct err		 ignored;
	int			 rc = -1;

	if (virt_network_state(v, GUESTNET_LIBVIRT_NET, &st, &xml, e) == -1)
		return -1;
	if (st == VIRT_NET_ABSENT)
		return 0;
	err_clear(&ignored);
	if (xml != NULL)
		(void)guestnet_live(xml, &bridge, &gateway, &ignored);
	if (virt_network_remove(v, GUESTNET_LIBVIRT_NET, e) == -1)
		goto cleanup;
	if (bridge != NULL && guestnet_name_ok(bridge, 15)) {
		argv[4] = bridge;
		err_clear(&ignored);
		(void)proc_run(argv, 20, NULL, &ignored);	/* not there: fine */
	}
	rc = 0;
cleanup:
	free(xml);
	free(bridge);
	free(gateway);
	return rc;
}
