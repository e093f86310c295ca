#!/usr/bin/python3
"""tests/e2e/console-browser.py URL PNG — Debian's noVNC in headless Chromium (python3-selenium,
chromium-driver): loads URL (the proxy's vnc_lite.html with a token), waits for noVNC to say
"Connected", checks its canvas has lit pixels, saves a screenshot to PNG. Prints "ok STATUS".
"""
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

url, png = sys.argv[1], sys.argv[2]
opts = Options()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
          "--window-size=900,600"):
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    drv.set_page_load_timeout(60)
    drv.get(url)
    status, lit, end = "", 0, time.time() + 120
    while time.time() < end:
        status = drv.execute_script("return document.getElementById('status').textContent")
        lit = drv.execute_script("""
            const c = document.querySelector('#screen canvas');
            if (!c || !c.width || !c.height) return 0;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) n++;
            return n;""")
        if status.startswith("Connected") and lit > 0:
            break
        if "Disconnected" in status or "wrong" in status:
            break
        time.sleep(0.5)
    drv.save_screenshot(png)
    if not (status.startswith("Connected") and lit > 0):
        sys.stderr.write("console-browser: status %r, %d lit pixels\n" % (status, lit))
        sys.exit(1)
    print("ok %s (%d lit pixels)" % (status, lit))
finally:
    drv.quit()
