/*
 * guestnet.h — the guest network policy: what the installer inside a build VM may reach.
 *
 *   isolated        (default) one NIC on isoforge's libvirt NAT network GUESTNET_LIBVIRT_NET:
 *                   DHCP and DNS from libvirt's dnsmasq on the gateway, NAT to the outside;
 *                   an nftables table of isoforge refuses everything else the guest sends to
 *                   the builder host (any of its addresses) and every denied range
 *                   (guest_deny), and the bridge's ports are isolated (no guest to guest).
 *   none            no NIC at all.
 *   network:NAME    one NIC on the operator's libvirt network NAME (its rules apply).
 *   bridge:NAME     one NIC on the operator's host bridge NAME (its rules apply).
 *
 * docs/security.md says why (user-mode networking reaches the host's loopback; Debian 12's
 * libvirt is built without passt). The parsers and builders are pure; guestnet_prepare and
 * guestnet_teardown act on libvirt and run nft(8).
 */
#ifndef ISOFORGE_GUESTNET_H
#define ISOFORGE_GUESTNET_H

#include "base/util.h"
#include "drivers/virt.h"
#include "isoboot/isoboot.h"

#define GUESTNET_DEFAULT	"isolated"
/* The libvirt network of the isolated policy. It is made on the first free N (0..255): bridge
 * isoforgeN, subnet 10.122.N.0/24; the nftables table of a bridge is named like the bridge. */
#define GUESTNET_LIBVIRT_NET	"isoforge-guests"
#define GUESTNET_BRIDGE_PREFIX	"isoforge"
#define GUESTNET_SUBNET_POOL	"10.122.0.0/16"
/* guest_deny's default: private, shared, link-local, loopback, multicast and reserved
 * ranges of IPv4 and IPv6. */
#define GUESTNET_DEFAULT_DENY \
	"0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, " \
	"192.0.0.0/24, 192.168.0.0/16, 198.18.0.0/15, 224.0.0.0/3, " \
	"::/127, ::ffff:0:0/96, 64:ff9b:1::/48, fc00::/7, fe80::/10, fec0::/10, ff00::/8"

enum guestnet_mode {
	GUESTNET_ISOLATED = 0,
	GUESTNET_NONE,
	GUESTNET_NETWORK,	/* the operator's libvirt network */
	GUESTNET_BRIDGE		/* the operator's host bridge */
};

struct guestnet_policy {
	enum guestnet_mode	 mode;
	char			 name[256];	/* network or bridge name */
};

/*
 * Parses a guest_network value: isolated | none | network:NAME | bridge:NAME (NAME: letters,
 * digits, '.', '_', '-'; a bridge at most 15 characters). NULL or "" is the default,
 * isolated. ERR_INVAL with a message naming the accepted values.
 */
int	guestnet_parse(const char *value, struct guestnet_policy *, struct err *);

/* One denied range: family AF_INET or AF_INET6, the network address and its prefix. */
struct guestnet_cidr {
	int		 family;
	unsigned char	 addr[16];
	unsigned	 prefix;
};

/*
 * Parses a guest_deny value: CIDRs (or single addresses) separated by commas and/or blanks,
 * IPv4 and IPv6; "none" = no range. NULL is GUESTNET_DEFAULT_DENY. A range with host bits
 * set ("10.1.2.3/8") is refused: it was probably not meant. *out (caller frees) gets *n
 * entries.
 */
int	guestnet_parse_deny(const char *value, struct guestnet_cidr **out, size_t *n,
	    struct err *);
/* A range as text ("10.0.0.0/8", "fc00::/7") into buf (at least 64 bytes). */
void	guestnet_cidr_format(const struct guestnet_cidr *, char *buf, size_t len);

/*
 * Sets params->network / params->bridge for isoboot from a guest_network value (see
 * guestnet_parse): the isolated network, the operator's network or bridge, or neither (none:
 * no NIC). The strings point into *policy, which must outlive the plan's construction.
 */
int	guestnet_isoboot(const char *value, struct guestnet_policy *policy,
	    struct isoboot_params *params, struct err *);

/*
 * The isolated network's libvirt XML (pure) for index n: NAT, bridge isoforge<n> with isolated
 * ports, gateway 10.122.<n>.1/24, DHCP on .2-.254 (no ping before an offer). Caller frees.
 */
char	*guestnet_network_xml(unsigned n);

/*
 * The nftables script (pure) that installs, atomically replacing an older one, the table
 * `inet BRIDGE` for the isolated network on bridge (gateway: its IPv4 address): from the
 * bridge the host accepts DHCP and DNS to the gateway only; forwarded traffic to a denied
 * range or another isoforge bridge is refused (TCP reset, else ICMP administratively
 * prohibited). NULL when bridge or gateway is unusable. Caller frees.
 */
char	*guestnet_nft_script(const char *bridge, const char *gateway,
	    const struct guestnet_cidr *deny, size_t ndeny);

/*
 * Before a build VM is defined: for isolated, makes sure the network GUESTNET_LIBVIRT_NET
 * exists (when not: defined persistent and autostarted on the first free N) and runs, then
 * (re)installs its nftables table with the deny list (a value as for guestnet_parse_deny).
 * Needs root (nft) and dnsmasq (libvirt's NAT networks). For the other policies nothing is
 * done. The error says what is missing.
 */
int	guestnet_prepare(struct virt *, const char *policy, const char *deny, struct err *);

/*
 * For a private libvirtd about to stop (its networks would outlive it): destroys and
 * undefines GUESTNET_LIBVIRT_NET and removes its nftables table. Nothing there is fine.
 */
int	guestnet_teardown(struct virt *, struct err *);

#endif
