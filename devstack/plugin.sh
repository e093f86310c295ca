#!/bin/bash
# devstack/plugin.sh — DevStack plugin for isoforge: builds and installs the isoforge CLI, the
# isoforged worker and the isoforge-api REST API, writes /etc/isoforge/isoforge.conf from
# DevStack's variables, creates the isoforge service user and its catalog entry (image-build),
# uploads virtio-win (VIRTIO_WIN_ISO_URL) and runs isoforge-api and isoforged.
# Defaults are in devstack/settings; see devstack/README.md.

# Save trace setting
_XTRACE_ISOFORGE=$(set +o | grep xtrace)
set -o xtrace

# The Debian/Ubuntu packages isoforge needs to build and to run builds: the Makefile's
# DEPS_BUILD and DEPS_RUN (its DEPS_CLOUD would pull distribution OpenStack packages: not here).
function isoforge_deps {
    local list
    for list in DEPS_BUILD DEPS_RUN; do
        # shellcheck disable=SC2016  # $($*) is make's, not the shell's
        make --no-print-directory -s -C "$ISOFORGE_DIR" -f Makefile -f - "isoforge-print-$list" \
            <<< 'isoforge-print-%: ; @echo $($*)'
    done
}

# install_isoforge: packages, then `make`, binaries to $ISOFORGE_BIN_DIR and templates to
# $ISOFORGE_TEMPLATES_DIR (where the programs look when $ISOFORGE_TEMPLATES is unset).
function install_isoforge {
    # shellcheck disable=SC2046  # one word per package
    install_package $(isoforge_deps)
    make -C "$ISOFORGE_DIR" -j"$(nproc)" all
    sudo install -d -m 0755 "$ISOFORGE_BIN_DIR"
    sudo install -m 0755 "$ISOFORGE_DIR/build/isoforge" "$ISOFORGE_DIR/build/isoforged" \
        "$ISOFORGE_DIR/build/isoforge-api" "$ISOFORGE_BIN_DIR/"
    sudo rm -rf "$ISOFORGE_TEMPLATES_DIR"
    sudo install -d -m 0755 "$(dirname "$ISOFORGE_TEMPLATES_DIR")"
    sudo cp -R "$ISOFORGE_DIR/templates" "$ISOFORGE_TEMPLATES_DIR"
    sudo chmod -R u=rwX,go=rX "$ISOFORGE_TEMPLATES_DIR"
}

# create_isoforge_accounts: the isoforge service user, with admin and service roles in the
# service project. The service role is what Glance's keystonemiddleware requires of an
# X-Service-Token before it accepts an expired user token.
function create_isoforge_accounts {
    create_service_user "$ISOFORGE_SERVICE_USER" "admin"
    get_or_create_role service
    local user
    user=$(get_or_create_user "$ISOFORGE_SERVICE_USER" "$SERVICE_PASSWORD" "$SERVICE_DOMAIN_NAME")
    get_or_add_user_project_role service "$user" "$SERVICE_PROJECT_NAME" \
        "$SERVICE_DOMAIN_NAME" "$SERVICE_DOMAIN_NAME"
    # isoforge-api in the catalog, as service type image-build
    if is_service_enabled isoforge-api; then
        local service
        service=$(get_or_create_service isoforge image-build "isoforge image builds")
        get_or_create_endpoint "$service" "$REGION_NAME" "$ISOFORGE_API_URL"
    fi
}

# configure_isoforge: /etc/isoforge/isoforge.conf (readable by $STACK_USER only: it holds the
# service password and the RabbitMQ URL) and the state directories.
function configure_isoforge {
    local domain_type=$ISOFORGE_DOMAIN_TYPE
    [[ "$domain_type" == kvm ]] || domain_type=qemu

    sudo install -d -m 0750 -o "$STACK_USER" "$ISOFORGE_CONF_DIR"
    install -d -m 0755 "$ISOFORGE_STATE_DIR" "$ISOFORGE_STATE_DIR/work" "$ISOFORGE_STATE_DIR/cache"
    rm -f "$ISOFORGE_CONF"
    touch "$ISOFORGE_CONF"
    chmod 0600 "$ISOFORGE_CONF"

    iniset "$ISOFORGE_CONF" DEFAULT transport_url "$(get_transport_url)"
    iniset "$ISOFORGE_CONF" DEFAULT debug "${ENABLE_DEBUG_LOG_LEVEL:-False}"

    iniset "$ISOFORGE_CONF" keystone_authtoken auth_url "$KEYSTONE_SERVICE_URI/v3"
    iniset "$ISOFORGE_CONF" keystone_authtoken auth_type password
    iniset "$ISOFORGE_CONF" keystone_authtoken username "$ISOFORGE_SERVICE_USER"
    iniset "$ISOFORGE_CONF" keystone_authtoken password "$SERVICE_PASSWORD"
    iniset "$ISOFORGE_CONF" keystone_authtoken project_name "$SERVICE_PROJECT_NAME"
    iniset "$ISOFORGE_CONF" keystone_authtoken user_domain_name "$SERVICE_DOMAIN_NAME"
    iniset "$ISOFORGE_CONF" keystone_authtoken project_domain_name "$SERVICE_DOMAIN_NAME"
    iniset "$ISOFORGE_CONF" keystone_authtoken region_name "$REGION_NAME"
    iniset "$ISOFORGE_CONF" keystone_authtoken interface "$ISOFORGE_INTERFACE"
    if [[ "$SERVICE_PROTOCOL" == https && -n "$SSL_BUNDLE_FILE" ]]; then
        iniset "$ISOFORGE_CONF" keystone_authtoken cafile "$SSL_BUNDLE_FILE"
    fi
    # [glance] endpoint and [nova] endpoint stay unset: the Keystone catalog has them.

    iniset "$ISOFORGE_CONF" libvirt uri "$ISOFORGE_LIBVIRT_URI"
    iniset "$ISOFORGE_CONF" libvirt domain_type "$domain_type"

    iniset "$ISOFORGE_CONF" builds work_dir "$ISOFORGE_STATE_DIR/work"
    iniset "$ISOFORGE_CONF" builds cache_dir "$ISOFORGE_STATE_DIR/cache"
    iniset "$ISOFORGE_CONF" builds max_builds "$ISOFORGE_MAX_BUILDS"
    iniset "$ISOFORGE_CONF" builds install_timeout "$ISOFORGE_INSTALL_TIMEOUT"
    iniset "$ISOFORGE_CONF" builds vnc_listen "$ISOFORGE_VNC_LISTEN"

    iniset "$ISOFORGE_CONF" api bind_host "$ISOFORGE_API_BIND_HOST"
    iniset "$ISOFORGE_CONF" api bind_port "$ISOFORGE_API_PORT"
    iniset "$ISOFORGE_CONF" api public_url "$ISOFORGE_API_URL"
    iniset "$ISOFORGE_CONF" api state_dir "$ISOFORGE_STATE_DIR/api"

    # qemu:///system as $STACK_USER needs the libvirt group (nova's libvirt setup does the
    # same for n-cpu; harmless when it already did).
    add_user_to_group "$STACK_USER" "${LIBVIRT_GROUP:-libvirt}"
}

# upload_isoforge_virtio_win: with VIRTIO_WIN_ISO_URL, the virtio-win ISO as a public Glance
# image (reused when one of that name exists), its id in [builds] virtio_win_image.
function upload_isoforge_virtio_win {
    [[ -n "$VIRTIO_WIN_ISO_URL" ]] || return 0
    local file id
    file=$FILES/$(basename "${VIRTIO_WIN_ISO_URL%%\?*}")
    if [[ ! -s "$file" ]]; then
        curl -fL --retry 3 -o "$file.part" "$VIRTIO_WIN_ISO_URL" || die $LINENO "cannot download $VIRTIO_WIN_ISO_URL"
        mv "$file.part" "$file"
    fi
    id=$(openstack --os-cloud devstack-admin --os-region-name "$REGION_NAME" image list \
        --name "$ISOFORGE_VIRTIO_WIN_NAME" -f value -c ID | head -n 1)
    if [[ -z "$id" ]]; then
        id=$(openstack --os-cloud devstack-admin --os-region-name "$REGION_NAME" image create \
            --disk-format iso --container-format bare --public \
            --property isoforge_role=virtio-win --file "$file" \
            -f value -c id "$ISOFORGE_VIRTIO_WIN_NAME")
    fi
    [[ -n "$id" ]] || die $LINENO "virtio-win upload failed"
    iniset "$ISOFORGE_CONF" builds virtio_win_image "$id"
}

# start_isoforge: isoforge-api and isoforged under DevStack's process management
# (devstack@isoforge-api, devstack@isoforged; the worker in the libvirt group).
function start_isoforge {
    if is_service_enabled isoforge-api; then
        run_process isoforge-api "$ISOFORGE_BIN_DIR/isoforge-api -c $ISOFORGE_CONF"
        echo "Waiting for isoforge-api at $ISOFORGE_API_URL"
        if ! wait_for_service "$SERVICE_TIMEOUT" "$ISOFORGE_API_URL"; then
            die $LINENO "isoforge-api did not start"
        fi
    fi
    if is_service_enabled isoforged; then
        run_process isoforged "$ISOFORGE_BIN_DIR/isoforged -c $ISOFORGE_CONF" "${LIBVIRT_GROUP:-libvirt}"
    fi
}

function stop_isoforge {
    stop_process isoforge-api
    stop_process isoforged
}

# cleanup_isoforge: what install and configure made (the Glance image stays with Glance).
function cleanup_isoforge {
    sudo rm -f "$ISOFORGE_BIN_DIR/isoforge" "$ISOFORGE_BIN_DIR/isoforged" \
        "$ISOFORGE_BIN_DIR/isoforge-api"
    sudo rm -rf "$ISOFORGE_TEMPLATES_DIR" "$ISOFORGE_CONF_DIR"
    rm -rf "$ISOFORGE_STATE_DIR"
}

if is_service_enabled isoforged isoforge-api || [[ "$1" == clean ]]; then
    if [[ "$1" == stack && "$2" == install ]]; then
        echo_summary "Installing isoforge"
        install_isoforge
    elif [[ "$1" == stack && "$2" == post-config ]]; then
        echo_summary "Configuring isoforge"
        create_isoforge_accounts
        configure_isoforge
    elif [[ "$1" == stack && "$2" == extra ]]; then
        echo_summary "Starting isoforge"
        upload_isoforge_virtio_win
        start_isoforge
    fi
    if [[ "$1" == unstack ]]; then
        stop_isoforge
    fi
    if [[ "$1" == clean ]]; then
        cleanup_isoforge
    fi
fi

# Restore xtrace
$_XTRACE_ISOFORGE
