#!/usr/bin/python3
"""tests/dashboard/dashboard-browser.py — the isoforge panel of Horizon driven by headless
Chromium (python3-selenium, Debian's chromium and chromium-driver), as a user would.

Environment: HORIZON_URL; OS_USERNAME/OS_PASSWORD (alice, member of alpha),
ALT_OS_USERNAME/ALT_OS_PASSWORD (bob, beta), READER_OS_USERNAME/READER_OS_PASSWORD (a reader of
alpha); DASH_ISO (the name of alice's interactive test ISO in Glance), DASH_FLAVOR (a flavor
name), SHOTS (the folder of the screenshots), PROFILE_DIR (a fresh --user-data-dir);
DASH_STEPS (optional): "basic" stops after the form's validation error (no build).

Steps (each one a screenshot SHOTS/NN-name.png):
 login as alice; the Image Builds panel in Project -> Compute; the Build from ISO form with
 its ISO, flavor, profile choices; a timeout the API refuses: the API's reason under the
 timeout field; a build of the ISO; its row goes (live) to Installing; the console tab's noVNC
 shows the installer's screen (lit pixels: not a blank canvas); Finish; the row ends Active
 with version 1; the image is in Project -> Images with isoforge_version 1; bob sees none of
 it; the reader sees the build but has no Build button, and a build posted anyway is refused.
Prints "ok" lines; exits non-zero at the first failure (with a screenshot SHOTS/fail-*.png).
"""
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ['HORIZON_URL'].rstrip('/')
SHOTS = os.environ['SHOTS']
ISO = os.environ.get('DASH_ISO', '')
FLAVOR = os.environ.get('DASH_FLAVOR', '')
STEPS = os.environ.get('DASH_STEPS', 'full')
BUILD_NAME = os.environ.get('DASH_BUILD_NAME', 'dash-build')
t0 = time.time()
shot_n = [0]


def log(msg):
    print('[%6.1f s] %s' % (time.time() - t0, msg), flush=True)


opts = Options()
for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
          '--disable-background-networking', '--disable-component-update', '--disable-sync',
          '--no-first-run', '--window-size=1280,1150',
          '--user-data-dir=' + os.environ['PROFILE_DIR']):
    opts.add_argument(a)
opts.binary_location = '/usr/bin/chromium'
drv = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=opts)
drv.set_page_load_timeout(90)
log('chromium started')


def shot(name):
    shot_n[0] += 1
    path = os.path.join(SHOTS, '%02d-%s.png' % (shot_n[0], name))
    drv.save_screenshot(path)
    return path


def fail(msg):
    try:
        shot('fail')
    except Exception:
        pass
    log('FAIL: ' + msg)
    drv.quit()
    sys.exit(1)


def wait(cond, secs, what):
    try:
        return WebDriverWait(drv, secs, poll_frequency=0.5).until(cond)
    except TimeoutException:
        fail('%s: not within %d s' % (what, secs))


def page_text():
    return drv.find_element(By.TAG_NAME, 'body').text


def login(user, password):
    drv.delete_all_cookies()
    drv.get(URL + '/auth/login/')
    wait(EC.presence_of_element_located((By.ID, 'id_username')), 60, 'the login form')
    drv.find_element(By.ID, 'id_username').send_keys(user)
    drv.find_element(By.ID, 'id_password').send_keys(password)
    drv.find_element(By.ID, 'loginBtn').click()
    wait(lambda d: '/auth/login' not in d.current_url, 60, 'login of ' + user)
    if 'Invalid credentials' in page_text():
        fail('login of %s refused' % user)
    log('logged in as ' + user)


def logout():
    drv.get(URL + '/auth/logout/')
    wait(EC.presence_of_element_located((By.ID, 'id_username')), 60, 'logout')


def open_panel():
    drv.get(URL + '/project/image_builds/')
    wait(EC.presence_of_element_located((By.ID, 'builds')), 60, 'the Image Builds table')


# the columns of the builds table (tables.py): a checkbox, then these
COL = {'name': 2, 'chain': 3, 'version': 4, 'state': 5, 'progress': 6, 'created': 7,
       'who': 8}


def row_cells(name):
    """{column: text} of the build NAME's row, read in one go (Horizon replaces a polled
    row's DOM every few seconds: elements held across calls go stale)."""
    return drv.execute_script("""
        for (const tr of document.querySelectorAll('#builds tbody tr[data-object-id]')) {
            const td = tr.querySelectorAll('td');
            if (td.length > 2 && td[arguments[1] - 1].textContent.trim() === arguments[0]) {
                const out = {id: tr.getAttribute('data-object-id')};
                for (const [k, i] of Object.entries(arguments[2]))
                    out[k] = td[i - 1].textContent.trim();
                return out;
            }
        }
        return null;""", name, COL['name'], COL)


def click_css(css):
    """Clicks the first element CSS matches, in one go; False when there is none."""
    return drv.execute_script(
        "const e = document.querySelector(arguments[0]); if (!e) return false;"
        "e.click(); return true;", css)


def rows():
    return drv.find_elements(By.CSS_SELECTOR, '#builds tbody tr[data-object-id]')


def row_state(name):
    r = row_cells(name)
    return r and r['state']


def options(sel_id):
    """[(value, label)] of a select (Horizon's themable selects hide the <select>)."""
    return drv.execute_script(
        "return Array.from(document.getElementById(arguments[0]).options)"
        ".map(o => [o.value, o.textContent.trim()]);", sel_id)


def choose(sel_id, value=None, label_prefix=None):
    for v, t in options(sel_id):
        if (value is not None and v == value) or \
                (label_prefix is not None and t.startswith(label_prefix)):
            drv.execute_script(
                "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
                "e.dispatchEvent(new Event('change', {bubbles: true}));"
                "if (window.$) $(e).trigger('change');", sel_id, v)
            return v
    fail('%s: no option %r' % (sel_id, value or label_prefix))


def canvas_lit():
    return drv.execute_script("""
        const c = document.querySelector('#screen canvas');
        if (!c || !c.width || !c.height) return -1;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) n++;
        return n;""")


# 1. alice: the panel, in Project -> Compute
login(os.environ['OS_USERNAME'], os.environ['OS_PASSWORD'])
open_panel()
nav = drv.find_elements(By.CSS_SELECTOR, 'a[href$="/project/image_builds/"]')
if not nav:
    fail('no Image Builds entry in the navigation')
if not drv.find_elements(By.CSS_SELECTOR, 'a[href$="/project/image_chains/"]'):
    fail('no Image Chains entry in the navigation')
shot('panel')
log('ok the Image Builds panel (and Image Chains) in Project -> Compute')

# 2. the form: its choices come from Glance, Nova and the API
btn = wait(EC.element_to_be_clickable((By.ID, 'builds__action_create')), 30,
           'the Build from ISO button')
btn.click()
wait(EC.visibility_of_element_located((By.ID, 'create_build_form')), 60, 'the form')
time.sleep(1)  # the modal's fade-in
isos = [t for v, t in options('id_iso_image')]
if ISO and ISO not in isos:
    fail('ISO %r not offered: %s' % (ISO, isos))
profiles = [v for v, t in options('id_os_profile')]
if 'linux' not in profiles:
    fail('no linux profile offered (GET /v1/profiles): %s' % profiles)
flavors = [t for v, t in options('id_flavor')]
if FLAVOR and not any(f.startswith(FLAVOR + ' ') for f in flavors):
    fail('flavor %r not offered: %s' % (FLAVOR, flavors))
shot('form')
log('ok the form offers the ISO, the flavors and the profiles %s' % profiles)


def fill(timeout_s):
    f = drv.find_element(By.ID, 'id_name')
    f.clear()
    f.send_keys(BUILD_NAME)
    choose('id_iso_image', label_prefix=ISO)
    choose('id_flavor', label_prefix=FLAVOR + ' ')
    choose('id_virtio_win', value='none')
    choose('id_os_profile', value='linux')
    nc = drv.find_element(By.ID, 'id_new_chain')
    nc.clear()
    nc.send_keys(BUILD_NAME)
    t = drv.find_element(By.ID, 'id_timeout')
    t.clear()
    t.send_keys(str(timeout_s))
    drv.find_element(By.CSS_SELECTOR, '#create_build_form [type=submit]').click()


# 3. a timeout the API refuses: its reason, on the form, under the field
fill(5)
err = wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#create_build_form .has-error'),
           60, "the API's validation error on the form")
text = ' '.join(e.text for e in err)
if 'must be within' not in text:
    fail('the error shown is not the API\'s reason: %r' % text)
field_err = drv.find_elements(By.CSS_SELECTOR,
                              '#create_build_form .has-error #id_timeout')
if not field_err:
    fail('the API\'s reason is not at the timeout field: %r' % text)
shot('form-error')
log('ok the API\'s 400 shown at the timeout field: %r' % text.strip())
if STEPS == 'basic':
    drv.quit()
    log('basic steps done')
    sys.exit(0)

# 4. the build: queued, then (live, without a reload) installing
fill(900)
wait(lambda d: '/project/image_builds/' in d.current_url and
     d.find_elements(By.ID, 'builds') and row_cells(BUILD_NAME) is not None,
     60, 'the build in the table')
build_id = row_cells(BUILD_NAME)['id']
log('build %s queued from the form' % build_id)
shot('queued')
seen = set()


def reaches(state):
    def check(d):
        s = row_state(BUILD_NAME)
        if s:
            seen.add(s)
        if s in ('Failed', 'Cancelled') and state not in ('Failed', 'Cancelled'):
            fail('the build ended %s (states seen: %s)' % (s, sorted(seen)))
        return s == state
    return check


wait(reaches('Installing'), 240, 'state Installing in the table')
shot('installing')
log('ok the row went to Installing live (seen %s)' % sorted(seen))

# 5. the console tab: noVNC in an iframe shows the installer's screen
drv.get(URL + '/project/image_builds/%s/?tab=build_details__console' % build_id)
frame = wait(EC.presence_of_element_located((By.ID, 'console_embed')), 60,
             'the console iframe')
src = frame.get_attribute('src')
if 'token' not in src:
    fail('the console URL has no token: %s' % src.split('?')[0])
drv.switch_to.frame(frame)
status, lit, end, first = '', -1, time.time() + 90, None
while time.time() < end:
    try:
        status = drv.find_element(By.ID, 'status').text
    except NoSuchElementException:
        status = ''
    lit = canvas_lit()
    if status.startswith('Connected') and lit > 0:
        # the firmware's lines come first: give the installer's boot up to 15 s to change
        # the screen, for a screenshot that shows it
        if first is None:
            first = (time.time(), lit)
        elif abs(lit - first[1]) > first[1] // 5 or time.time() - first[0] > 15:
            break
    if 'Disconnected' in status or 'wrong' in status:
        break
    time.sleep(0.5)
drv.switch_to.default_content()
path = shot('console')
if not (status.startswith('Connected') and lit > 0):
    fail('console: status %r, %d lit pixels' % (status, lit))
log('ok the console shows the installer: %r, %d lit pixels (a blank canvas has 0)'
    % (status, lit))

# 6. Finish: the row action, confirmed; the build ends active with version 1
open_panel()
wait(reaches('Installing'), 30, 'the row')
wait(lambda d: click_css('button[name="action"][value="builds__finish__%s"]' % build_id),
     30, 'the Finish action of the installing build')


def finished(d):
    # Horizon asks to confirm some batch actions in a modal
    for b in d.find_elements(By.CSS_SELECTOR, '.modal.in .modal-footer .btn-primary, '
                                              '.modal.in .modal-footer .btn-danger'):
        if b.is_displayed():
            b.click()
    return d.find_elements(By.CSS_SELECTOR, '.alert-success')


msg = wait(finished, 60, 'the success message of Finish')
log('Finish clicked: %r' % msg[0].text.strip())
wait(reaches('Active'), 300, 'state Active')
r = wait(lambda d: row_cells(BUILD_NAME), 30, 'the row')
version = r['version']
if r['who'] != os.environ['OS_USERNAME']:
    fail('who is %r' % r['who'])
if version != '1':
    fail('version %r, not 1' % version)
shot('active')
log('ok the build ended Active, version 1 (states seen: %s)' % sorted(seen))

# 7. the image, in Project -> Images, with its isoforge_version
drv.get(URL + '/project/image_builds/%s/' % build_id)
link = wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#build-image a'), 30,
            'the image link of the build')
image_id = link[0].text.strip()
events_link = drv.find_elements(By.CSS_SELECTOR, 'a[data-target="#build_details__events"]')
if events_link:
    events_link[0].click()
    wait(lambda d: 'installing' in d.find_element(By.ID, 'build_details__events').text.lower(),
         30, 'the events tab')
    shot('events')
    log('ok the events tab lists the transitions')
drv.get(URL + '/project/images/')
wait(EC.presence_of_element_located((By.ID, 'images')), 60, 'the Images panel')
if not drv.find_elements(By.CSS_SELECTOR, 'tr[data-object-id="%s"]' % image_id):
    fail('image %s not in Project -> Images' % image_id)
shot('images')
drv.get(URL + '/project/images/%s/' % image_id)
wait(lambda d: 'isoforge_version' in page_text(), 60, 'isoforge_version on the image page')
txt = page_text()
lines = txt.splitlines()
try:
    i = lines.index('isoforge_version')
    val = lines[i + 1].strip()
except (ValueError, IndexError):
    val = None
if val != '1':
    fail('isoforge_version on the image page is %r' % val)
shot('image')
log('ok image %s in Project -> Images, isoforge_version 1' % image_id)

# the chain: its version 1 is that image, linked to the Images panel
drv.get(URL + '/project/image_chains/')
wait(EC.presence_of_element_located((By.ID, 'chains')), 60, 'the Image Chains panel')
if BUILD_NAME not in page_text():
    fail('chain %s not in Image Chains' % BUILD_NAME)
drv.get(URL + '/project/image_chains/%s/' % BUILD_NAME)
wait(EC.presence_of_element_located((By.ID, 'versions')), 60, 'the chain\'s versions')
if not drv.find_elements(By.CSS_SELECTOR, '#versions a[href$="/project/images/%s/"]' % image_id):
    fail('the chain\'s version does not link to image %s' % image_id)
shot('chain')
log('ok Image Chains: %s version 1 links to the image' % BUILD_NAME)

# 8. bob (project beta) sees none of it
logout()
login(os.environ['ALT_OS_USERNAME'], os.environ['ALT_OS_PASSWORD'])
open_panel()
if row_cells(BUILD_NAME) is not None or rows():
    fail('bob sees builds: %s' % [r.text for r in rows()])
drv.get(URL + '/project/images/')
wait(EC.presence_of_element_located((By.ID, 'images')), 60, 'bob\'s Images panel')
if drv.find_elements(By.CSS_SELECTOR, 'tr[data-object-id="%s"]' % image_id):
    fail('bob sees alice\'s image')
drv.get(URL + '/project/image_builds/%s/' % build_id)
time.sleep(1)
if build_id in page_text() and 'Unable' not in page_text():
    fail('bob opens alice\'s build')
shot('bob')
log('ok bob (beta) sees neither the build nor the image')

# 9. a reader of alpha sees the build, has no Build button, and a build posted is refused
logout()
login(os.environ['READER_OS_USERNAME'], os.environ['READER_OS_PASSWORD'])
open_panel()
if row_cells(BUILD_NAME) is None:
    fail('the reader does not see the project\'s build')
if drv.find_elements(By.ID, 'builds__action_create'):
    fail('the reader has a Build from ISO button')
drv.get(URL + '/project/image_builds/create/')
wait(EC.presence_of_element_located((By.ID, 'create_build_form')), 60, 'the form (reader)')
BUILD_NAME = 'dash-reader'
fill(900)
refusal = wait(lambda d: d.execute_script(
    "return Array.from(document.querySelectorAll('.alert-danger, .has-error'))"
    ".map(e => e.textContent.trim()).join(' ');"), 60, 'the refusal of the reader\'s build')
if 'may not create builds' not in refusal:
    fail('the reader\'s build refused with something else: %r' % refusal)
shot('reader')
open_panel()
if row_cells('dash-reader') is not None:
    fail('the reader\'s build was made')
log('ok the reader cannot start a build: %r' % ' '.join(refusal.split()))
drv.quit()
log('all steps passed')
