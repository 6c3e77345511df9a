"""Interoperability check: the third-party `eopayment` PayFiP clients against our simulator.

Runs eopayment's web-service client (zeep, driven by the WSDL the simulator serves) and its
classic TIPI client against a running `payfip_sim`, with a small local HTTP server standing
for the commune's notification / return / urlcl endpoints:

* recupererDetailClient;
* for each outcome P, V, R, Z, A: creerPaiementSecurise (idOp), result before payment (P5 →
  WAITING), payment page + form, notification received, result fetched by eopayment
  (`Payment.response('idop=…')`), mapped by eopayment to PAID / DENIED / WAITING;
* faults: a 4-character refdet (R3) and an unknown idOp (P1 → EXPIRED);
* classic TIPI: URL built by eopayment, page + form, result posted to urlcl, parsed by
  eopayment (PAID, test mode).

Usage: python eopayment_check.py --sim http://127.0.0.1:8091
Exit status 0 when every check passed; prints one line per check.
"""

import argparse
import decimal
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from eopayment import common
from eopayment import payfip_ws, tipi

RECEIVED = {'notif': [], 'return': [], 'classic': []}
FAILURES = []


class Receiver(BaseHTTPRequestHandler):
    """Stands for the commune's endpoints: records what the gateway sends."""

    def _record(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length).decode() if length else ''
        path, _, query = self.path.partition('?')
        RECEIVED.setdefault(path.strip('/'), []).append(query or body)
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    do_GET = _record
    do_POST = _record

    def log_message(self, *args):
        pass


def result_name(value):
    names = {common.PAID: 'PAID', common.DENIED: 'DENIED', common.CANCELLED: 'CANCELLED',
             common.WAITING: 'WAITING', common.EXPIRED: 'EXPIRED', common.ERROR: 'ERROR'}
    return names.get(value, repr(value))


def check(label, condition, detail=''):
    print('%s %s%s' % ('OK  ' if condition else 'FAIL', label, (' — ' + detail) if detail else ''))
    if not condition:
        FAILURES.append(label)


def wait_for(predicate, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--sim', required=True, help='simulator base URL, e.g. http://127.0.0.1:8091')
    args = parser.parse_args()
    sim = args.sim.rstrip('/')

    server = ThreadingHTTPServer(('127.0.0.1', 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = 'http://127.0.0.1:%d' % server.server_address[1]
    browser = requests.Session()

    # --- web service: eopayment's PayFiP client, WSDL (and XSDs) fetched from the simulator.
    payfip = payfip_ws.PayFiP(wsdl_url=sim + '/tpa/services/securite?wsdl', use_local_wsdl=False)
    info = payfip.get_info_client('090909')
    check('recupererDetailClient', info.numcli == '090909', 'libelleN1=%r' % info.libelleN1)

    payment = payfip_ws.Payment(
        {
            'numcli': '090909',
            'saisie': 'T',
            'normal_return_url': receiver + '/return',
            'automatic_return_url': receiver + '/notif',
        }
    )
    payment.payfip = payfip

    expected = {
        'P': (common.PAID, 'paid CB'),
        'V': (common.PAID, 'paid direct debit'),
        'R': (common.DENIED, 'refused CB'),
        'Z': (common.DENIED, 'refused direct debit'),
        # eopayment keeps an abandon WAITING for 2 minutes (the idOp may still be used).
        'A': (common.WAITING, 'cancelled CB - still waiting as idop is still active'),
    }
    for outcome, (result, bank_status) in expected.items():
        idop, kind, url = payment.request(
            amount=decimal.Decimal('10.00'),
            email='john.doe@example.com',
            subject='Facture F2026-000123 (%s)' % outcome,
        )
        check('[%s] creerPaiementSecurise' % outcome, kind == common.URL and len(idop) == 36, 'idop=%s' % idop)
        before = payment.payment_status(idop)
        check('[%s] result before payment is P5 -> WAITING' % outcome, before.result == common.WAITING)

        page_url = url.replace(payfip_ws.PAYMENT_URL, sim + '/tpa/paiementws.web')
        page = browser.get(page_url)
        check('[%s] payment page' % outcome, page.status_code == 200 and idop in page.text)
        done = browser.post(
            sim + '/tpa/paiementws.web',
            data={'idop': idop, 'resultrans': outcome},
            allow_redirects=False,
        )
        location = done.headers.get('Location', '')
        check(
            '[%s] browser redirected to urlredirect?idop=' % outcome,
            done.status_code == 303 and location == receiver + '/return?idop=' + idop,
            location,
        )
        notified = wait_for(lambda: ('idop=' + idop) in RECEIVED['notif'])
        check('[%s] notification POST idop=%s' % (outcome, idop), notified)

        response = payment.response('idop=' + idop)
        check(
            '[%s] eopayment result' % outcome,
            response.result == result and response.bank_status == bank_status,
            'result=%s bank_status=%r transaction_id=%r test=%s'
            % (result_name(response.result), response.bank_status, response.transaction_id, response.test),
        )
        bank = response.bank_data
        when = payment.get_transaction_datetime(payfip.get_info_paiement(idop))
        check(
            '[%s] result fields' % outcome,
            bank['resultrans'] == outcome
            and bank['montant'] == '1000'
            and bank['numcli'] == '090909'
            and bool(bank['numauto']) == (outcome in 'PV')
            and when is not None,
            'transaction at %s, numauto=%s, objet=%r'
            % (when.isoformat() if when else None, bank['numauto'], bank['objet']),
        )

    try:
        payfip.get_idop(
            numcli='090909',
            saisie='T',
            exer='2026',
            refdet='ABCD',
            montant='1000',
            mel='john.doe@example.com',
            url_notification=receiver + '/notif',
            url_redirect=receiver + '/return',
        )
        check('fault R3 on a 4-character refdet', False, 'no fault raised')
    except payfip_ws.PayFiPError as e:
        check('fault R3 on a 4-character refdet', e.code == 'R3', '%s %r' % (e.code, e.message))

    expired = payment.payment_status('00000000-0000-0000-0000-000000000000')
    check('unknown idOp: P1 -> EXPIRED', expired.result == common.EXPIRED)

    # --- classic TIPI: eopayment builds the URL, the simulator posts the result to urlcl.
    classic = tipi.Payment({'numcli': '012345', 'automatic_return_url': receiver + '/classic', 'saisie': 'T'})
    refdet, kind, url = classic.request(
        amount='21.54', email='parent@example.com', exer=2026, refdet='130000000000123456'
    )
    page = browser.get(url.replace(tipi.TIPI_URL, sim + '/tpa/paiement.web'))
    session = re.search(r'name="session" value="([0-9a-f]+)"', page.text)
    check('classic page', page.status_code == 200 and session is not None)
    browser.post(sim + '/tpa/paiement.web', data={'session': session.group(1), 'resultrans': 'P'})
    delivered = wait_for(lambda: len(RECEIVED['classic']) >= 1)
    check('classic result posted to urlcl', delivered)
    response = classic.response(RECEIVED['classic'][0])
    check(
        'classic eopayment result',
        response.result == common.PAID and response.order_id == refdet and response.test,
        'result=%s order_id=%s test=%s fields=%s'
        % (result_name(response.result), response.order_id, response.test, sorted(response.bank_data)),
    )

    server.shutdown()
    print('%d failure(s)' % len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == '__main__':
    sys.exit(main())
