/* domain.c — the plan on top of the operator's base template → libvirt domain XML (libxml2). */
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "isoboot/isoboot.h"
#include "base/util.h"


/* 1 when n is an element named name. */
static int
is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0;
}

/* The first child element named name, or NULL. */
static xmlNode *
child(xmlNode *parent, const char *name)
{
	xmlNode	*n;

	for (n = parent->children; n != NULL; n = n->next)
		if (is_elem(n, name))
			return n;
	return NULL;
}

/* An attribute's value compared with want (0 when absent). */
static int
attr_is(xmlNode *n, const char *name, const char *want)
{
	xmlChar	*v = xmlGetProp(n, BAD_CAST name);
	int	 same = v != NULL && xmlStrcmp(v, BAD_CAST want) == 0;

	xmlFree(v);
	return same;
}

static void
set_attr(xmlNode *n, const char *name, const char *value)
{
	xmlSetProp(n, BAD_CAST name, BAD_CAST value);
}

/* A new element (not linked) with escaped text content when text is not NULL. */
static xmlNode *
new_elem(xmlDoc *doc, const char *name, const char *text)
{
	xmlNode	*n = xmlNewDocNode(doc, NULL, BAD_CAST name, NULL);

	if (text != NULL)
		xmlNodeAddContent(n, BAD_CAST text);
	return n;
}

/* Appends a new child element (escaped text when not NULL). */
static xmlNode *
add(xmlNode *parent, const char *name, const char *text)
{
	return xmlAddChild(parent, new_elem(parent->doc, name, text));
}

/* A new element holding a number, with a unit attribute when unit is not NULL. */
static xmlNode *
new_uint(xmlDoc *doc, const char *name, unsigned v, const char *unit)
{
	char	 s[24];
	xmlNode	*n;

	snprintf(s, sizeof(s), "%u", v);
	n = new_elem(doc, name, s);
	if (unit != NULL)
		set_attr(n, "unit", unit);
	return n;
}

/* prune() predicate that keeps every element (drops only comments and blanks). */
static int
keep(xmlNode *n)
{
	(void)n;
	return 0;
}

/* Unlinks and frees the children of parent for which drop() says 1, and all comments. */
static void
prune(xmlNode *parent, int (*drop)(xmlNode *))
{
	xmlNode	*n, *next;

	for (n = parent->children; n != NULL; n = next) {
		next = n->next;
		if (n->type == XML_COMMENT_NODE || n->type == XML_TEXT_NODE ||
		    (n->type == XML_ELEMENT_NODE && drop(n))) {
			xmlUnlinkNode(n);
			xmlFreeNode(n);
		}
	}
}

/* Top-level elements the plan writes itself. */
static int
owned_top(xmlNode *n)
{
	static const char *const names[] = { "name", "uuid", "genid", "title", "description",
		"memory", "currentMemory", "maxMemory", "vcpu", "vcpus", "os", "on_poweroff",
		"on_reboot", "on_crash", NULL };
	size_t	 i;

	for (i = 0; names[i] != NULL; i++)
		if (is_elem(n, names[i]))
			return 1;
	return 0;
}

/* Devices the plan writes itself; the operator's other devices stay. */
static int
owned_device(xmlNode *n)
{
	static const char *const names[] = { "disk", "interface", "graphics", "serial",
		"console", "tpm", "video", NULL };
	size_t	 i;

	for (i = 0; names[i] != NULL; i++)
		if (is_elem(n, names[i]))
			return 1;
	if (is_elem(n, "controller") && attr_is(n, "type", "usb"))
		return 1;
	if (is_elem(n, "input") && (attr_is(n, "type", "tablet") || attr_is(n, "bus", "usb")))
		return 1;
	return 0;
}

/* <os>: machine, firmware; boot order lives on the devices. */
static xmlNode *
make_os(xmlDoc *doc, const struct isoboot_plan *pl)
{
	xmlNode	*os = new_elem(doc, "os", NULL), *type, *fw, *f;

	if (strcmp(pl->firmware, "uefi") == 0)
		set_attr(os, "firmware", "efi");
	type = add(os, "type", "hvm");
	set_attr(type, "arch", "x86_64");
	set_attr(type, "machine", pl->machine);
	if (strcmp(pl->firmware, "uefi") == 0) {
		/* pick the OVMF build by what it does, not by a distribution's file name */
		fw = add(os, "firmware", NULL);
		f = add(fw, "feature", NULL);
		set_attr(f, "enabled", pl->secure_boot ? "yes" : "no");
		set_attr(f, "name", "secure-boot");
		if (pl->secure_boot) {
			f = add(fw, "feature", NULL);
			set_attr(f, "enabled", "yes");
			set_attr(f, "name", "enrolled-keys");
		}
		if (pl->nvram != NULL)
			add(os, "nvram", pl->nvram);
	}
	if (pl->kernel != NULL) {
		/* the installer with its answers in a copy of its initrd; the ISO stays its CD */
		add(os, "kernel", pl->kernel);
		add(os, "initrd", pl->initrd);
		if (pl->cmdline != NULL)
			add(os, "cmdline", pl->cmdline);
	}
	return os;
}

/* One <disk> of the plan. */
static void
add_disk(xmlNode *devices, const struct isoboot_plan *pl, const struct isoboot_device *d)
{
	static const char *const kinds[] = { "disk", "cdrom", "floppy" };
	xmlNode	*disk, *n;
	char	 order[16];

	disk = add(devices, "disk", NULL);
	set_attr(disk, "type", "file");
	set_attr(disk, "device", kinds[d->kind]);
	n = add(disk, "driver", NULL);
	set_attr(n, "name", "qemu");
	set_attr(n, "type", d->format);
	if (d->kind == ISOBOOT_DISK) {
		/* a build that dies with its host is rebuilt: no need to pay for flushes */
		if (strcmp(pl->disk_cache, "default") != 0)
			set_attr(n, "cache", pl->disk_cache);
		/* the guest's TRIM and zeroes keep the qcow2 (the image) small */
		set_attr(n, "discard", "unmap");
		set_attr(n, "detect_zeroes", "unmap");
	}
	n = add(disk, "source", NULL);
	set_attr(n, "file", d->path);
	n = add(disk, "target", NULL);
	set_attr(n, "dev", d->target);
	set_attr(n, "bus", d->bus);
	if (d->readonly)
		add(disk, "readonly", NULL);
	if (d->boot_order > 0) {
		snprintf(order, sizeof(order), "%d", d->boot_order);
		n = add(disk, "boot", NULL);
		set_attr(n, "order", order);
	}
}

/* Disks, USB, NIC, serial console, VNC, video, TPM: the devices the plan owns. */
static void
make_devices(xmlNode *devices, xmlNode *anchor, const struct isoboot_plan *pl)
{
	xmlNode		*tmp, *n, *c;
	const char	*usb;
	size_t		 i;

	/* build under a scratch parent, then move in front of the operator's devices */
	tmp = xmlNewDocNode(devices->doc, NULL, BAD_CAST "devices", NULL);
	for (i = 0; i < pl->ndevices; i++)
		add_disk(tmp, pl, &pl->devices[i]);

	/* headless: no tablet to plug in, and every USB controller slows a TCG guest's boot */
	usb = pl->headless ? "none" : pl->usb;
	n = add(tmp, "controller", NULL);
	set_attr(n, "type", "usb");
	set_attr(n, "model", strcmp(usb, "xhci") == 0 ? "qemu-xhci" :
	    strcmp(usb, "uhci") == 0 ? "piix3-uhci" : "none");

	/* no user-mode networking, ever: it reaches the builder host's loopback */
	if (pl->network != NULL || pl->bridge != NULL) {
		n = add(tmp, "interface", NULL);
		set_attr(n, "type", pl->network != NULL ? "network" : "bridge");
		c = add(n, "source", NULL);
		set_attr(c, pl->network != NULL ? "network" : "bridge",
		    pl->network != NULL ? pl->network : pl->bridge);
		c = add(n, "model", NULL);
		set_attr(c, "type", pl->nic_model);
	}

	n = add(tmp, "serial", NULL);
	set_attr(n, "type", pl->serial_log != NULL ? "file" : "pty");
	if (pl->serial_log != NULL) {
		c = add(n, "source", NULL);
		set_attr(c, "path", pl->serial_log);
	}
	c = add(n, "target", NULL);
	set_attr(c, "port", "0");
	n = add(tmp, "console", NULL);
	set_attr(n, "type", pl->serial_log != NULL ? "file" : "pty");
	if (pl->serial_log != NULL) {
		c = add(n, "source", NULL);
		set_attr(c, "path", pl->serial_log);
	}
	c = add(n, "target", NULL);
	set_attr(c, "type", "serial");
	set_attr(c, "port", "0");

	if (strcmp(usb, "none") != 0) {
		/* absolute pointer: the VNC mouse follows the user's */
		n = add(tmp, "input", NULL);
		set_attr(n, "type", "tablet");
		set_attr(n, "bus", "usb");
	}

	/* a headless build's screen is its serial log: no VNC server refreshing a framebuffer */
	if (!pl->headless) {
		n = add(tmp, "graphics", NULL);
		set_attr(n, "type", "vnc");
		set_attr(n, "port", "-1");
		set_attr(n, "autoport", "yes");
		set_attr(n, "listen", pl->vnc_listen);
		if (pl->vnc_password != NULL)
			set_attr(n, "passwd", pl->vnc_password);
		c = add(n, "listen", NULL);
		set_attr(c, "type", "address");
		set_attr(c, "address", pl->vnc_listen);
	}

	/* Windows Setup draws on its display adapter even unattended: it keeps one; the image's
	 * hw_video_model is the profile's either way */
	n = add(tmp, "video", NULL);
	c = add(n, "model", NULL);
	set_attr(c, "type", pl->headless && (pl->os_type == NULL ||
	    strcmp(pl->os_type, "windows") != 0) ? "none" : pl->video);

	if (pl->tpm) {
		n = add(tmp, "tpm", NULL);
		set_attr(n, "model", "tpm-crb");
		c = add(n, "backend", NULL);
		set_attr(c, "type", "emulator");
		set_attr(c, "version", "2.0");
	}

	while ((n = tmp->children) != NULL) {
		xmlUnlinkNode(n);
		if (anchor != NULL)
			xmlAddPrevSibling(anchor, n);
		else
			xmlAddChild(devices, n);
	}
	xmlFreeNode(tmp);
}

/* Inserts n after *last (or first in root when *last is NULL) and makes it the new last. */
static void
place(xmlNode *root, xmlNode **last, xmlNode *n)
{
	if (*last != NULL)
		xmlAddNextSibling(*last, n);
	else if (root->children != NULL)
		xmlAddPrevSibling(root->children, n);
	else
		xmlAddChild(root, n);
	*last = n;
}

/* The first error of parsing the template. */
struct template_err {
	int	 line;
	char	 msg[256];
};

/* libxml2's structured error handler: keeps the first error (without its newline). */
static void
template_error(void *data, xmlError *xe)
{
	xmlParserCtxt		*ctxt = data;
	struct template_err	*first = ctxt->_private;
	size_t			 n;

	if (first->msg[0] != '\0' || xe == NULL || xe->level < XML_ERR_ERROR)
		return;
	first->line = xe->line;
	snprintf(first->msg, sizeof(first->msg), "%s",
	    xe->message != NULL ? xe->message : "not XML");
	n = strlen(first->msg);
	while (n > 0 && first->msg[n - 1] == '\n')
		first->msg[--n] = '\0';
}

/* Builds the domain XML; see isoboot.h. */
char *
isoboot_domain_xml(const struct isoboot_plan *pl, const char *base_xml, struct err *err)
{
	xmlDoc		*doc = NULL;
	xmlNode		*root, *last = NULL, *n, *next, *meta, *b, *features, *clock, *devices;
	xmlNode		*anchor;
	xmlBuffer	*out = NULL;
	xmlParserCtxt	*ctxt = NULL;
	struct template_err first;
	char		*xml = NULL, *desc;

	if (pl == NULL || base_xml == NULL) {
		err_set(err, ERR_INTERNAL, "isoboot_domain_xml: missing argument");
		return NULL;
	}
	xmlInitParser();
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL) {
		err_set(err, ERR_INTERNAL, "domain template: out of memory");
		goto cleanup;
	}
	/* the first error says what is wrong; later ones are consequences */
	first.line = 0;
	first.msg[0] = '\0';
	ctxt->_private = &first;
	ctxt->sax->serror = template_error;
	doc = xmlCtxtReadMemory(ctxt, base_xml, (int)strlen(base_xml), "domain.xml", NULL,
	    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOWARNING);
	if (doc == NULL || first.msg[0] != '\0') {
		err_set(err, ERR_INVAL, "domain template: line %d: %s", first.line,
		    first.msg[0] != '\0' ? first.msg : "not XML");
		goto cleanup;
	}
	root = xmlDocGetRootElement(doc);
	if (root == NULL || !is_elem(root, "domain") || root->ns != NULL) {
		err_set(err, ERR_INVAL, "domain template: the root element is not <domain>");
		goto cleanup;
	}
	set_attr(root, "type", pl->domain_type);
	prune(root, owned_top);

	place(root, &last, new_elem(doc, "name", pl->domain_name));
	desc = xasprintf("isoforge build %s of \"%s\" (profile %s)", pl->build_id, pl->name,
	    pl->profile);
	place(root, &last, new_elem(doc, "description", desc));
	free(desc);

	/* who we are, for a worker that restarts and finds its domains again */
	meta = child(root, "metadata");
	if (meta != NULL)
		xmlUnlinkNode(meta);
	else
		meta = new_elem(doc, "metadata", NULL);
	place(root, &last, meta);
	for (n = meta->children; n != NULL; n = next) {
		/* an operator who copied a generated domain: ours is written anew */
		next = n->next;
		if (n->ns != NULL && xmlStrcmp(n->ns->href, BAD_CAST ISOBOOT_XMLNS) == 0) {
			xmlUnlinkNode(n);
			xmlFreeNode(n);
		}
	}
	b = xmlNewDocNode(doc, NULL, BAD_CAST "build", NULL);
	xmlSetNs(b, xmlNewNs(b, BAD_CAST ISOBOOT_XMLNS, BAD_CAST "isoforge"));
	xmlAddChild(meta, b);
	xmlNewTextChild(b, b->ns, BAD_CAST "build-id", BAD_CAST pl->build_id);
	xmlNewTextChild(b, b->ns, BAD_CAST "name", BAD_CAST pl->name);
	xmlNewTextChild(b, b->ns, BAD_CAST "profile", BAD_CAST pl->profile);
	if (pl->owner != NULL)
		xmlNewTextChild(b, b->ns, BAD_CAST "owner", BAD_CAST pl->owner);
	if (pl->answers_method != NULL)
		xmlNewTextChild(b, b->ns, BAD_CAST "answers", BAD_CAST pl->answers_method);
	place(root, &last, new_uint(doc, "memory", pl->ram_mib, "MiB"));
	place(root, &last, new_uint(doc, "currentMemory", pl->ram_mib, "MiB"));
	place(root, &last, new_uint(doc, "vcpu", pl->vcpus, NULL));
	place(root, &last, make_os(doc, pl));

	/* features, cpu, clock right after <os>, the operator's content kept */
	features = child(root, "features");
	if (features != NULL) {
		xmlUnlinkNode(features);
		prune(features, keep);
	} else {
		features = new_elem(doc, "features", NULL);
	}
	place(root, &last, features);
	if (child(features, "acpi") == NULL)
		add(features, "acpi", NULL);
	if (child(features, "apic") == NULL)
		add(features, "apic", NULL);
	if (pl->secure_boot) {
		/* OVMF with Secure Boot protects its variables in SMM */
		n = child(features, "smm");
		if (n == NULL)
			n = add(features, "smm", NULL);
		set_attr(n, "state", "on");
	}

	n = child(root, "cpu");
	if (n != NULL) {
		xmlUnlinkNode(n);
		place(root, &last, n);
	} else if (strcmp(pl->domain_type, "kvm") == 0) {
		/* the operator may pin a model in the template; under TCG qemu's default */
		n = new_elem(doc, "cpu", NULL);
		set_attr(n, "mode", "host-passthrough");
		place(root, &last, n);
	}

	clock = child(root, "clock");
	if (clock != NULL)
		xmlUnlinkNode(clock);
	else
		clock = new_elem(doc, "clock", NULL);
	place(root, &last, clock);
	set_attr(clock, "offset", pl->clock);

	/* the install ends when the guest powers off; installers reboot (Windows, many times) */
	devices = child(root, "devices");
	if (devices == NULL)
		devices = xmlAddChild(root, new_elem(doc, "devices", NULL));
	xmlAddPrevSibling(devices, new_elem(doc, "on_poweroff", "destroy"));
	xmlAddPrevSibling(devices, new_elem(doc, "on_reboot", "restart"));
	xmlAddPrevSibling(devices, new_elem(doc, "on_crash", "destroy"));

	prune(devices, owned_device);
	anchor = devices->children;
	if (anchor != NULL && is_elem(anchor, "emulator"))
		anchor = anchor->next;
	make_devices(devices, anchor, pl);

	out = xmlBufferCreate();
	if (xmlNodeDump(out, doc, root, 0, 1) < 0) {
		err_set(err, ERR_INTERNAL, "domain XML: could not serialise");
		goto cleanup;
	}
	xml = xasprintf("%s\n", (const char *)xmlBufferContent(out));
cleanup:
	if (out != NULL)
		xmlBufferFree(out);
	xmlFreeDoc(doc);
	if (ctxt != NULL)
		xmlFreeParserCtxt(ctxt);
	return xml;
}
