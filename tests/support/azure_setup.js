// Test-harness helper for Azurite, using Microsoft's own SDK (signed requests are its job):
//   node azure_setup.js container ENDPOINT CONTAINER          create a container
//   node azure_setup.js upload ENDPOINT CONTAINER NAME FILE   upload a file as a block blob
//   node azure_setup.js sas ENDPOINT                          print an account SAS (read, list)
// ENDPOINT is http://127.0.0.1:PORT/devstoreaccount1. Azurite's development key is public.
const az = require('@azure/storage-blob');
const account = 'devstoreaccount1';
const key = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const cred = new az.StorageSharedKeyCredential(account, key);
const [cmd, endpoint, container, name, file] = process.argv.slice(2);
const service = new az.BlobServiceClient(endpoint, cred);

async function main() {
  if (cmd === 'container') {
    await service.getContainerClient(container).createIfNotExists();
  } else if (cmd === 'upload') {
    await service.getContainerClient(container).getBlockBlobClient(name).uploadFile(file);
  } else if (cmd === 'sas') {
    const sas = az.generateAccountSASQueryParameters({
      expiresOn: new Date(Date.now() + 3600 * 1000),
      permissions: az.AccountSASPermissions.parse('rl'),
      services: az.AccountSASServices.parse('b').toString(),
      resourceTypes: az.AccountSASResourceTypes.parse('sco').toString(),
    }, cred).toString();
    process.stdout.write(sas);
  } else {
    throw new Error('unknown command ' + cmd);
  }
}
main().catch((e) => { console.error(e.message); process.exit(1); });
