-- wrk script: POST one image file as a raw body. IMAGE names the file, IMAGE_TYPE its type.
local path = os.getenv("IMAGE") or "tests/fixtures/images/espresso-coffee.png"
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*all")
wrk.headers["content-type"] = os.getenv("IMAGE_TYPE") or "image/png"
file:close()

-- Count answers that are not 200, so a run full of errors cannot pass for a fast one.
local failed = 0
function response(status, headers, body)
  if status ~= 200 then failed = failed + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("non-200 answers: %d\n", failed))
end
